// Shrinks a one-line element's font until its text fits its box: hall names
// and window names are as long as each hall made them.
export function fitText(el) {
  el.style.fontSize = "";
  const max = parseFloat(getComputedStyle(el).fontSize);
  // The text's own extent: a centred flex line overflows on both sides, and
  // scrollWidth would only see the right half of it.
  const range = document.createRange();
  range.selectNodeContents(el);
  const text = range.getBoundingClientRect();
  const scale = Math.min(el.clientWidth / text.width, el.clientHeight / text.height, 1);
  if (scale < 1) el.style.fontSize = `${Math.floor(max * scale * 0.96)}px`;
}
