/* cartwheel storefront client: window.cartwheel.decide / activate / consent.
 *
 * One script tag, no dependencies, no build step, no third-party requests:
 *   <script src="https://cw.shop.example/v1/client.js"></script>
 * or a copy the shop hosts itself (then pages survive cartwheel being down entirely):
 *   <script src="/js/cartwheel.js" data-endpoint="https://cw.shop.example"></script>
 *
 * Every call returns a Promise that never rejects. When cartwheel errors, is slow (timeout),
 * unreachable, or may not be asked (no consent, no signed token), decide resolves to
 *   {action: null, eventId: null, placement, fallback: true, reason}
 * and the page shows its default ("render null exactly as the control"). The visitor is the
 * random value of the first-party cookie cw_vid (128 bits), reused if the shop set it; nothing
 * personal is read or sent, and no cookie is sent to cartwheel (credentials: "omit").
 *
 * Options on the script tag: data-endpoint (default: the script's own origin), data-timeout
 * (ms, default 300), data-consent="required" (nothing is set or sent until consent(true)),
 * data-cookie-days (default 30), data-cookie-domain (share cw_vid across subdomains),
 * data-token (a signed token the shop's backend rendered), data-signed="required" (never
 * decide without a token).
 */
(function () {
  "use strict";
  if (window.cartwheel && window.cartwheel.version) return; // loaded twice: keep the first
  var COOKIE = "cw_vid";
  var script = document.currentScript;
  var data = (script && script.dataset) || {};
  var endpoint = data.endpoint || (script && script.src ? new URL(script.src, location.href).origin
    : location.origin);
  endpoint = endpoint.replace(/\/+$/, "");
  var settings = {
    timeout: positive(data.timeout, 300),
    cookieDays: positive(data.cookieDays, 30),
    cookieDomain: data.cookieDomain || "",
    token: data.token || null,
    signed: data.signed === "required",
  };
  var consented = data.consent !== "required";
  var preview = previewToken();

  // a preview link (?cw_preview=..., from the dashboard) holds for the tab's session: the
  // pages then show the previewed actions and cartwheel logs nothing
  function previewToken() {
    try {
      var fromLink = new URLSearchParams(location.search).get("cw_preview");
      if (fromLink) sessionStorage.setItem("cw_preview", fromLink);
      return fromLink || sessionStorage.getItem("cw_preview");
    } catch (e) {
      return null;
    }
  }

  function positive(value, fallback) {
    var n = Number(value);
    return value !== undefined && isFinite(n) && n > 0 ? n : fallback;
  }

  function readCookie() {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === COOKIE) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function writeCookie(value, maxAge) {
    var cookie = COOKIE + "=" + encodeURIComponent(value) + "; Path=/; Max-Age=" + maxAge +
      "; SameSite=Lax";
    if (settings.cookieDomain) cookie += "; Domain=" + settings.cookieDomain;
    if (location.protocol === "https:") cookie += "; Secure";
    document.cookie = cookie;
  }

  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    var hex = "";
    for (var i = 0; i < bytes.length; i++) hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return hex;
  }

  // the visitor id: the cookie's value, set (random) on first use once consent allows it
  function visitorId() {
    if (!consented) return null;
    var id = readCookie();
    if (!id) {
      id = newId();
      writeCookie(id, Math.round(settings.cookieDays * 86400));
    }
    return id;
  }

  function fallback(placement, reason) {
    return { action: null, eventId: null, placement: placement, fallback: true, reason: reason };
  }

  // POST JSON to cartwheel within the timeout; resolves to the parsed answer, rejects with
  // "timeout" or "error" (the callers turn that into a value: nothing ever reaches the page)
  function post(path, body, timeout) {
    return new Promise(function (resolve, reject) {
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var timer = setTimeout(function () {
        if (controller) controller.abort();
        reject("timeout");
      }, timeout);
      var request;
      try {
        request = fetch(endpoint + path, {
          method: "POST", credentials: "omit", mode: "cors", keepalive: true,
          headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
          signal: controller ? controller.signal : undefined,
        });
      } catch (e) {
        clearTimeout(timer);
        reject("error");
        return;
      }
      request.then(function (res) {
        return res.json().then(function (answer) {
          clearTimeout(timer);
          if (res.ok) resolve(answer); else reject("error");
        });
      }).catch(function () {
        clearTimeout(timer);
        reject("error");
      });
    });
  }

  function decide(placement, context, options) {
    options = options || {};
    return new Promise(function (resolve) {
      try {
        if (!consented) return resolve(fallback(placement, "consent"));
        var token = options.token || settings.token;
        if (settings.signed && !token) return resolve(fallback(placement, "signed"));
        var body = { visitor_id: visitorId(), placement: placement, context: context || {} };
        if (token) body.token = token;
        if (options.preview || preview) body.preview = options.preview || preview;
        if (options.activate !== undefined) body.activate = !!options.activate;
        post("/v1/decide", body, positive(options.timeout, settings.timeout)).then(
          function (d) {
            resolve({
              action: d.action, eventId: d.event_id, probability: d.probability, group: d.group,
              placement: d.placement, deferred: !!d.deferred, preview: !!d.preview,
            });
          },
          function (why) { resolve(fallback(placement, why)); });
      } catch (e) {
        resolve(fallback(placement, "error"));
      }
    });
  }

  // a deferred decision is being shown: resolves to {status} ("activated", "duplicate",
  // "capped": do not show it, "error", "timeout", "skipped" without an event id)
  function activate(eventId, options) {
    options = options || {};
    return new Promise(function (resolve) {
      if (!eventId) return resolve({ status: "skipped" });
      try {
        var body = { event_id: eventId };
        if (options.token || settings.token) body.token = options.token || settings.token;
        post("/v1/activate", body,
          positive(options.timeout, settings.timeout)).then(
          function (answer) { resolve({ status: answer.status }); },
          function (why) { resolve({ status: why }); });
      } catch (e) {
        resolve({ status: "error" });
      }
    });
  }

  // the visitor's consent: false removes the cookie and stops every request
  function consent(granted) {
    return new Promise(function (resolve) {
      try {
        consented = !!granted;
        if (!consented) writeCookie("", 0);
      } catch (e) { /* a page without cookies: nothing to remove */ }
      resolve({ consent: consented });
    });
  }

  window.cartwheel = {
    version: 1,
    endpoint: endpoint,
    decide: decide,
    activate: activate,
    consent: consent,
    visitorId: function () { return consented ? readCookie() : null; },
    configure: function (options) {
      for (var key in options) if (key in settings) settings[key] = options[key];
    },
  };
})();
