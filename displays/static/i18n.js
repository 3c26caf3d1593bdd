// One catalogue per page, Chinese first: `t(key)` looks a string up in the
// page's catalogue for the chosen language; elements with `data-i18n="key"`
// (text) or `data-i18n-attr="attr:key,attr:key"` are filled in by `apply()`.
// The choice is kept in localStorage for the page.

const KEY = "qms.lang";

export class I18n {
  #catalogue;
  #lang;

  // catalogue: { zh: {key: text}, en: {key: text} }
  constructor(catalogue, fallback = "zh") {
    this.#catalogue = catalogue;
    let saved = null;
    try {
      saved = localStorage.getItem(KEY);
    } catch {
      /* storage disabled: Chinese */
    }
    this.#lang = saved && saved in catalogue ? saved : fallback;
  }

  get lang() {
    return this.#lang;
  }

  set lang(value) {
    if (!(value in this.#catalogue)) return;
    this.#lang = value;
    try {
      localStorage.setItem(KEY, value);
    } catch {
      /* not kept */
    }
    this.apply();
  }

  // `vars` fills {name} placeholders.
  t(key, vars = {}) {
    const text = this.#catalogue[this.#lang][key] ?? this.#catalogue.zh[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  }

  apply(root = document) {
    document.documentElement.lang = this.#lang === "zh" ? "zh-CN" : "en";
    for (const el of root.querySelectorAll("[data-i18n]")) {
      el.textContent = this.t(el.dataset.i18n);
    }
    for (const el of root.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of el.dataset.i18nAttr.split(",")) {
        const [attr, key] = pair.split(":");
        el.setAttribute(attr.trim(), this.t(key.trim()));
      }
    }
  }
}
