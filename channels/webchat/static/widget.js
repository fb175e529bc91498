/* omohub chat widget. Put one tag on any page:
 *
 *   <script src="https://hub.example.com/widget.js" async
 *           data-product="OMO-TEA-001" data-store="shibuya" data-locale="ja"></script>
 *
 * It adds a launcher button that opens <origin of this script>/chat in an iframe.
 * The only global it defines is window.OmohubWidget ({open, close, toggle}).
 * Styles are set through the CSSOM (element.style), which a host page's CSP allows
 * even when it forbids inline style attributes.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src || window.OmohubWidget) return;

  var origin = new URL(script.src, window.location.href).origin;
  var CONTEXT = /^[A-Za-z0-9_.\-]{1,64}$/;
  var params = new URLSearchParams();
  var product = script.getAttribute("data-product");
  var store = script.getAttribute("data-store");
  var locale = script.getAttribute("data-locale");
  if (product && CONTEXT.test(product)) params.set("product", product);
  if (store && CONTEXT.test(store)) params.set("store", store);
  if (locale === "ja" || locale === "en") params.set("lang", locale);
  var query = params.toString();
  var chatUrl = origin + "/chat" + (query ? "?" + query : "");
  var ja = (locale || document.documentElement.lang || navigator.language || "").slice(0, 2) === "ja";
  var LABEL_OPEN = ja ? "チャットを開く" : "Open chat";
  var LABEL_CLOSE = ja ? "チャットを閉じる" : "Close chat";
  var FRAME_TITLE = ja ? "チャットでお問い合わせ" : "Chat with us";
  var SVG = "http://www.w3.org/2000/svg";
  var Z = "2147483000";

  var frame = null;
  var panel = null;
  var isOpen = false;

  function css(node, props) { Object.keys(props).forEach(function (k) { node.style[k] = props[k]; }); }

  function icon(paths) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    paths.forEach(function (d) {
      var path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", "currentColor");
      path.setAttribute("stroke-width", "2");
      path.setAttribute("stroke-linecap", "round");
      path.setAttribute("stroke-linejoin", "round");
      svg.appendChild(path);
    });
    return svg;
  }

  var chatIcon = icon(["M4 5h16v11H9l-5 4z"]);
  var closeIcon = icon(["M6 6l12 12", "M18 6L6 18"]);

  var button = document.createElement("button");
  button.type = "button";
  button.setAttribute("aria-label", LABEL_OPEN);
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("data-omohub", "launcher");
  css(button, {
    position: "fixed", right: "20px", bottom: "20px", width: "58px", height: "58px",
    borderRadius: "50%", border: "0", padding: "0", margin: "0", cursor: "pointer",
    background: "#1f6feb", color: "#fff", display: "flex", alignItems: "center",
    justifyContent: "center", boxShadow: "0 6px 20px rgba(20,40,90,.3)", zIndex: Z,
    transition: "transform .15s ease"
  });
  button.appendChild(chatIcon);
  button.addEventListener("mouseenter", function () { button.style.transform = "scale(1.06)"; });
  button.addEventListener("mouseleave", function () { button.style.transform = ""; });
  button.addEventListener("click", function () { toggle(); });

  function layout() {
    if (!panel) return;
    var small = window.innerWidth < 480;
    css(panel, small
      ? { right: "0", bottom: "0", width: "100%", height: "100%", borderRadius: "0" }
      : { right: "20px", bottom: "92px", width: "380px", height: "min(640px, calc(100vh - 120px))",
          borderRadius: "16px" });
    button.style.display = small && isOpen ? "none" : "flex";
  }

  function build() {
    panel = document.createElement("div");
    panel.setAttribute("data-omohub", "panel");
    panel.id = "omohub-chat-panel";
    css(panel, {
      position: "fixed", overflow: "hidden", zIndex: Z, background: "#fff",
      boxShadow: "0 12px 40px rgba(20,40,90,.25)", display: "none"
    });
    frame = document.createElement("iframe");
    frame.src = chatUrl;
    frame.title = FRAME_TITLE;
    frame.setAttribute("allow", "clipboard-write");
    css(frame, { border: "0", width: "100%", height: "100%", display: "block" });
    panel.appendChild(frame);
    document.body.appendChild(panel);
    button.setAttribute("aria-controls", panel.id);
    window.addEventListener("resize", layout);
  }

  function open() {
    if (!panel) build();
    isOpen = true;
    panel.style.display = "block";
    layout();
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-label", LABEL_CLOSE);
    button.replaceChild(closeIcon, button.firstChild);
    try { frame.focus(); } catch (e) { /* ignore */ }
  }

  function close() {
    if (!panel) return;
    isOpen = false;
    panel.style.display = "none";
    layout();
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", LABEL_OPEN);
    button.replaceChild(chatIcon, button.firstChild);
    button.focus();
  }

  function toggle() { if (isOpen) close(); else open(); }

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !frame || event.source !== frame.contentWindow) return;
    if (event.data && event.data.type === "omohub:close") close();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen) close();
  });

  function mount() { document.body.appendChild(button); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.OmohubWidget = { open: open, close: close, toggle: toggle };
})();
