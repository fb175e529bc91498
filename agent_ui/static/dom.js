/* Small helpers shared by the agent UI pages (inbox, dashboard, knowledge base): the page's
 * JSON blocks and meta tags, translations, DOM building and the API's fetch helper.
 * Strings always become text nodes: nothing here ever parses HTML. */
(function () {
  "use strict";

  function readJSON(id) {
    var node = document.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  }

  function meta(name) {
    var node = document.querySelector('meta[name="' + name + '"]');
    return node ? node.getAttribute("content") || "" : "";
  }

  /** t(key, {name: value}) over one locale's messages; unknown keys show as themselves. */
  function translator(messages) {
    return function t(key, params) {
      var text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
      if (params) {
        text = text.replace(/\{(\w+)\}/g, function (whole, name) {
          return Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole;
        });
      }
      return text;
    };
  }

  function byId(id) { return document.getElementById(id); }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else node.setAttribute(key, String(value));
    });
    (Array.isArray(children) ? children : [children]).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return node;
  }

  /** api(method, url, body): the hub's JSON API (same origin). Every non-GET request sends
   * X-CSRF-Token (the page's csrf-token meta); a body is sent as JSON.
   * Resolves with the parsed body, or null when there is none (204, an empty or non-JSON
   * body). A 401 sends the browser to /login and rejects with the generic error text
   * (.status 401). Any other non-OK response rejects with an Error whose message is the
   * API's error message (else its code, else a "detail", else "HTTP <status>"), with the
   * HTTP status as .status, the error's code (or null) as .code and the parsed body (or
   * null) as .body. */
  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (method !== "GET") headers["X-CSRF-Token"] = meta("csrf-token");
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/login");
        var t = translator(readJSON("i18n"));
        throw apiError(t("error.generic"), 401, null, null);
      }
      if (response.status === 204) return null;
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var err = data && data.error;
          var message = err && (err.message || err.code) ? String(err.message || err.code)
            : (data && data.detail ? String(data.detail) : "HTTP " + response.status);
          throw apiError(message, response.status, err && err.code ? String(err.code) : null, data);
        }
        return data;
      });
    });
  }

  function apiError(message, status, code, body) {
    var error = new Error(message);
    error.status = status;
    error.code = code;
    error.body = body;
    return error;
  }

  window.omohubDom = { readJSON: readJSON, meta: meta, translator: translator, byId: byId,
                       clear: clear, el: el, api: api };
})();
