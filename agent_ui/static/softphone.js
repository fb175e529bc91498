/* omohub inbox softphone: Twilio's Voice JS SDK (npm @twilio/voice-sdk, copied into
 * /static/vendor by scripts/setup.sh) in a small panel of the inbox.
 *
 *  - The panel stays hidden, and neither the SDK nor a Twilio.Device is loaded, unless
 *    GET /api/voice/token answers 200 (404: the phone channel is off; 409/422: the softphone
 *    is not set up).
 *  - #softphone[data-state] is the panel's state, for people and tests alike:
 *    connecting, ready, offline, incoming, in-call, ended.
 *  - "Call the customer" is click-to-call through the REST API
 *    (POST /api/conversations/{id}/calls): Twilio rings the customer and then this
 *    softphone, where the agent accepts as for any incoming call.
 *  - Caller numbers reach the DOM through textContent only.
 */
(function () {
  "use strict";

  var panel = document.getElementById("softphone");
  if (!panel) return;

  var MESSAGES = readJSON("i18n");
  var CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var SDK_URL = "/static/vendor/twilio.min.js";
  var BACK_TO_READY_MS = 4000;

  var device = null;
  var call = null;          // the current Twilio.Call (incoming or in progress)
  var registered = false;
  var conversation = null;  // {id, phone} of the ticket open in the inbox
  var endedTimer = null;

  function readJSON(id) {
    var node = document.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  }

  function t(key, params) {
    var text = Object.prototype.hasOwnProperty.call(MESSAGES, key) ? MESSAGES[key] : key;
    return String(text).replace(/\{(\w+)\}/g, function (whole, name) {
      return params && Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole;
    });
  }

  function $(id) { return document.getElementById(id); }

  /** Shows one state; ``detail`` is an optional second line (an error, a number). */
  function show(state, text, detail) {
    clearTimeout(endedTimer);
    panel.dataset.state = state;
    $("sp-status").textContent = text;
    var extra = $("sp-detail");
    extra.textContent = detail || "";
    extra.hidden = !detail;
    $("sp-accept").hidden = $("sp-reject").hidden = state !== "incoming";
    $("sp-hangup").hidden = $("sp-mute").hidden = state !== "in-call";
    updateCallButton();
  }

  function showIdle() {
    if (registered) show("ready", t("softphone.state.ready"));
    else show("offline", t("softphone.state.offline"), panel.dataset.reason || "");
  }

  function updateCallButton() {
    var button = $("sp-call");
    var idle = !call && (panel.dataset.state === "ready" || panel.dataset.state === "ended");
    button.hidden = !(conversation && conversation.phone);
    button.disabled = !idle;
  }

  function fetchToken() {
    return fetch("/api/voice/token", {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) return null;   // 404 phone off, 409/422 softphone not set up
      return response.json().then(function (data) { return data && data.token ? data.token : null; });
    }).catch(function () { return null; });
  }

  function loadSdk() {
    if (window.Twilio && window.Twilio.Device) return Promise.resolve(window.Twilio);
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = SDK_URL;
      script.onload = function () {
        if (window.Twilio && window.Twilio.Device) resolve(window.Twilio);
        else reject(new Error("Twilio.Device missing"));
      };
      script.onerror = function () { reject(new Error("cannot load " + SDK_URL)); };
      document.head.appendChild(script);
    });
  }

  function errorLine(error) {
    if (!error) return "";
    var text = String(error.message || error.name || error);
    return error.code && text.indexOf(String(error.code)) < 0 ? text + " (" + error.code + ")" : text;
  }

  function caller(incoming) {
    var params = incoming.parameters || {};
    var from = String(params.From || "").replace(/^client:/, "");
    return from || t("softphone.unknown_caller");
  }

  function start(token) {
    panel.hidden = false;
    show("connecting", t("softphone.state.connecting"));
    loadSdk().then(function (Twilio) {
      device = new Twilio.Device(token, {
        codecPreferences: ["opus", "pcmu"],
        closeProtection: true,
        logLevel: "silent"  // errors are shown in the panel and reported below
      });
      device.on("registering", function () {
        if (!call) show("connecting", t("softphone.state.connecting"));
      });
      device.on("registered", function () {
        registered = true;
        panel.dataset.reason = "";
        if (!call) showIdle();
      });
      device.on("unregistered", function () {
        registered = false;
        if (!call) showIdle();
      });
      device.on("error", function (error) {
        // e.g. 31005/53000: Twilio's signalling cannot be reached; the SDK keeps retrying
        console.warn("softphone:", errorLine(error));
        panel.dataset.reason = t("softphone.unreachable", { error: errorLine(error) });
        if (!call) {
          registered = device.state === "registered";
          showIdle();
        }
      });
      device.on("incoming", onIncoming);
      device.on("tokenWillExpire", function () {
        fetchToken().then(function (fresh) { if (fresh && device) device.updateToken(fresh); });
      });
      return device.register();
    }).catch(function (error) {
      console.warn("softphone:", errorLine(error));
      panel.dataset.reason = errorLine(error);
      if (!call) showIdle();
    });
  }

  function onIncoming(incoming) {
    if (call) { incoming.reject(); return; }   // one call at a time
    call = incoming;
    show("incoming", t("softphone.state.incoming", { from: caller(incoming) }));
    incoming.on("accept", function () {
      show("in-call", t("softphone.state.in_call", { with: caller(incoming) }));
      setMuted(false);
    });
    ["cancel", "disconnect", "reject"].forEach(function (name) {
      incoming.on(name, function () { ended(incoming); });
    });
    incoming.on("error", function (error) {
      console.warn("softphone call:", errorLine(error));
      $("sp-detail").textContent = errorLine(error);
      $("sp-detail").hidden = false;
    });
  }

  function ended(which) {
    if (call !== which) return;
    call = null;
    show("ended", t("softphone.state.ended"));
    endedTimer = setTimeout(function () { if (!call) showIdle(); }, BACK_TO_READY_MS);
  }

  function setMuted(muted) {
    var button = $("sp-mute");
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = t(muted ? "softphone.unmute" : "softphone.mute");
  }

  function callCustomer() {
    if (!conversation || call) return;
    var id = conversation.id;
    var button = $("sp-call");
    button.disabled = true;
    fetch("/api/conversations/" + encodeURIComponent(String(id)) + "/calls", {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": CSRF }
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.ok) {
          show(panel.dataset.state, t("softphone.calling"));
          return;
        }
        var message = data && data.error && data.error.message ? data.error.message : "HTTP " + response.status;
        $("sp-detail").textContent = t("softphone.call_failed", { error: message });
        $("sp-detail").hidden = false;
      });
    }).catch(function (error) {
      $("sp-detail").textContent = t("softphone.call_failed", { error: errorLine(error) });
      $("sp-detail").hidden = false;
    }).then(updateCallButton);
  }

  function wire() {
    $("sp-accept").addEventListener("click", function () { if (call) call.accept(); });
    $("sp-reject").addEventListener("click", function () {
      if (call) { var current = call; current.reject(); ended(current); }
    });
    $("sp-hangup").addEventListener("click", function () { if (call) call.disconnect(); });
    $("sp-mute").addEventListener("click", function () {
      if (!call) return;
      var muted = !call.isMuted();
      call.mute(muted);
      setMuted(muted);
    });
    $("sp-call").addEventListener("click", callCustomer);
    // app.js tells which ticket is open and whether its customer has a phone number
    document.addEventListener("omohub:conversation", function (event) {
      conversation = event.detail && event.detail.id ? event.detail : null;
      updateCallButton();
    });
    window.addEventListener("beforeunload", function () {
      if (device) device.destroy();
    });
  }

  wire();
  fetchToken().then(function (token) {
    if (token) start(token);   // otherwise the panel stays hidden and no Device exists
  });
})();
