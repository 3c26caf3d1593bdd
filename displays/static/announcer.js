// Spoken calls: a chime, then the sentence in Mandarin, one at a time.
// Announcements queue: one never cuts another off, and one that the speech
// engine forgets to end (Chrome sometimes never fires `onend`; a browser
// with no voices may fire nothing) is given up after a generous timeout.

const DIGITS = "零一二三四五六七八九";
const CHIME_MS = 900;
const SOUND_KEY = "qms.sound";

// "A023" → "A 零二三": digits one by one, as halls read numbers aloud
// (a TTS engine would otherwise say "二十三").
export function spokenNumber(number) {
  const runs = String(number).match(/\d+|\D+/g) ?? [];
  return runs
    .map((run) => (/\d/.test(run[0]) ? Array.from(run, (d) => DIGITS[Number(d)]).join("") : run.trim()))
    .filter(Boolean)
    .join(" ");
}

export function callText(number, windowName, recall = false) {
  const text = `请 ${spokenNumber(number)} 号，到 ${windowName} 办理`;
  return recall ? `再次呼叫，${text}` : text;
}

// Rough speaking time of a sentence, plus slack: beyond it the engine is stuck.
function utteranceTimeoutMs(text) {
  return Math.min(30_000, 3_000 + text.length * 400);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Mandarin for mainland China first; espeak-ng's "cmn-latn-pinyin" reads
// pinyin, not characters, so it never counts.
function chineseVoice(voices) {
  const usable = voices.filter((v) => !/latn/i.test(v.lang));
  const lang = (v) => v.lang.replace("_", "-").toLowerCase();
  return (
    usable.find((v) => lang(v) === "zh-cn") ??
    usable.find((v) => lang(v) === "cmn" || lang(v).startsWith("cmn-")) ??
    usable.find((v) => lang(v).startsWith("zh")) ??
    null
  );
}

export class Announcer {
  log = []; // every text enqueued, in order
  spoken = []; // every text that started, in order
  history = []; // {text, start, end} in ms (performance.now), for checking overlap

  #queue = [];
  #busy = false;
  #audio = null;
  #voice = null;
  #synth = window.speechSynthesis ?? null;

  // onVoice(found: boolean) is told once voices are known; onBlocked(blocked)
  // whenever the browser's autoplay rule starts or stops holding sound back.
  constructor({ onVoice = () => {}, onBlocked = () => {} } = {}) {
    this.onBlocked = onBlocked;
    const Context = window.AudioContext ?? window.webkitAudioContext;
    if (Context) {
      this.#audio = new Context();
      this.#audio.onstatechange = () => this.onBlocked(this.blocked);
    }
    this.#findVoice(onVoice);
  }

  get blocked() {
    return this.#audio !== null && this.#audio.state === "suspended";
  }

  get remembered() {
    try {
      return localStorage.getItem(SOUND_KEY) === "on";
    } catch {
      return false;
    }
  }

  // Called from a click: the one gesture the browser needs to let sound play.
  async unlock() {
    try {
      localStorage.setItem(SOUND_KEY, "on");
    } catch {
      /* not kept: asked again after a reload */
    }
    if (this.#synth) this.#synth.speak(new SpeechSynthesisUtterance(""));
    if (this.#audio) await this.#audio.resume();
    this.onBlocked(this.blocked);
  }

  // A screen that was unlocked before may be let through without a click
  // (kiosk flag, the browser's media engagement); try before asking.
  async tryResume() {
    if (!this.#audio || !this.blocked) return;
    await Promise.race([this.#audio.resume().catch(() => {}), sleep(300)]);
    this.onBlocked(this.blocked);
  }

  enqueue(text) {
    this.log.push(text);
    this.#queue.push(text);
    this.#pump();
  }

  async #pump() {
    if (this.#busy) return;
    this.#busy = true;
    while (this.#queue.length) {
      const text = this.#queue.shift();
      const entry = { text, start: performance.now(), end: null };
      this.spoken.push(text);
      this.history.push(entry);
      try {
        await this.#chime();
        await this.#say(text);
      } catch (e) {
        console.warn("announcement failed", e);
      }
      entry.end = performance.now();
    }
    this.#busy = false;
  }

  async #chime() {
    const ctx = this.#audio;
    if (!ctx) return;
    if (ctx.state === "suspended") await Promise.race([ctx.resume().catch(() => {}), sleep(100)]);
    if (ctx.state !== "running") return;
    const t = ctx.currentTime + 0.02;
    tone(ctx, 880, t, 0.4);
    tone(ctx, 660, t + 0.4, 0.5);
    await sleep(CHIME_MS);
  }

  #say(text) {
    const synth = this.#synth;
    if (!synth) return Promise.resolve();
    return new Promise((resolve) => {
      const u = new SpeechSynthesisUtterance(text);
      u.lang = "zh-CN";
      if (this.#voice) u.voice = this.#voice;
      u.rate = 0.9;
      const timer = setTimeout(() => {
        // Stuck engine: clear it, or every later utterance queues behind this one.
        synth.cancel();
        done();
      }, utteranceTimeoutMs(text));
      function done() {
        clearTimeout(timer);
        u.onend = u.onerror = null;
        resolve();
      }
      u.onend = u.onerror = done;
      synth.speak(u);
    });
  }

  #findVoice(onVoice) {
    const synth = this.#synth;
    if (!synth) {
      onVoice(false);
      return;
    }
    const look = () => {
      this.#voice = chineseVoice(synth.getVoices());
      if (this.#voice) onVoice(true);
      return this.#voice;
    };
    synth.addEventListener("voiceschanged", look);
    // Voices load late, and some browsers never fire voiceschanged.
    if (!look()) setTimeout(() => look() || onVoice(false), 2_000);
  }
}

function tone(ctx, hz, at, seconds) {
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = "sine";
  osc.frequency.value = hz;
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + seconds);
  osc.connect(gain).connect(ctx.destination);
  osc.start(at);
  osc.stop(at + seconds + 0.05);
}
