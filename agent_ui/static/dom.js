/* Small DOM helpers shared by the supervisor pages (dashboard, knowledge base).
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

  window.omohubDom = { readJSON: readJSON, meta: meta, translator: translator, byId: byId,
                       clear: clear, el: el };
})();
