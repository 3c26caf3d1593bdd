// The visitor page's 提醒我 on browsers that put notifications up only through
// a service worker (Chrome on Android). It serves no requests (its scope is
// the static files, not the pages); a tap on a reminder brings the ticket's
// page forward, or opens it again.

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data?.url;
  event.waitUntil(
    (async () => {
      const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const page = pages.find((c) => c.url === url);
      if (page) return page.focus();
      return url ? self.clients.openWindow(url) : undefined;
    })(),
  );
});
