// What the visitor's two phone pages share: requests with a timeout, and the
// API's refusals turned into words from the page's catalogue.

const REQUEST_TIMEOUT_MS = 8_000;

export function request(url, init = {}) {
  return fetch(url, { cache: "no-store", signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init });
}

// The contract's {"error": {code, message}}, or what can be said without it
// (a proxy's error page is not JSON).
export async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error ?? { code: "", message: response.statusText };
  } catch {
    return { code: "", message: `HTTP ${response.status}` };
  }
}

// The catalogue's `err_<code>` sentence, or its `err_other` with the server's own.
export function errorText(i18n, error) {
  const key = `err_${error.code}`;
  const text = i18n.t(key);
  return text === key ? i18n.t("err_other", { message: error.message }) : text;
}
