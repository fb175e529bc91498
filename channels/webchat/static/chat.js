/* omohub customer chat (the /chat page, also inside the /widget.js iframe).
 *
 *  - one visitor token in localStorage, so a reload or a new tab continues the same
 *    customer and ticket; a forged or expired one is dropped and we start fresh;
 *  - every send carries a client_id; unacknowledged sends are retried with the same
 *    client_id after a reconnect, so the hub stores each message once;
 *  - every string from the network reaches the DOM through textContent only;
 *  - quick replies are offered on the newest message only (the server marks, in the
 *    history, the one bot message that still takes them); a pressed one names the message
 *    it was under (reply_to), so "solved" counts for that answer and no other.
 */
(function () {
  "use strict";

  var root = document.getElementById("chat");
  if (!root) return;

  var TOKEN_KEY = "omohub.visitor_token";
  var MAX_BYTES = 10 * 1024 * 1024;
  var IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
  var ACK_TIMEOUT = 10000;
  var MESSAGES = readJSON("i18n");
  var LOCALE = root.dataset.locale || "ja";
  var PRODUCT = root.dataset.product || "";
  var STORE = root.dataset.store || "";
  var LINK = root.dataset.link || "";   // a one-time code from "continue in another browser"

  var list = byId("messages");
  var form = byId("composer");
  var input = byId("text");
  var fileInput = byId("file");
  var shown = new Set();          // server ids already on screen
  var pending = new Map();        // client_id -> {text, node, state}
  var conversationId = null;
  var typingSent = 0;
  var typingStop = null;
  var typingHide = null;
  var socket = null;

  // ------------------------------------------------------------------ helpers

  function byId(id) { return document.getElementById(id); }

  function readJSON(id) {
    var node = byId(id);
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  }

  function t(key) {
    return Object.prototype.hasOwnProperty.call(MESSAGES, key) ? MESSAGES[key] : key;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function storage() {
    try { return window.localStorage; } catch (e) { return null; }
  }

  function getToken() {
    var s = storage();
    try { return s ? s.getItem(TOKEN_KEY) : memoryToken; } catch (e) { return memoryToken; }
  }
  var memoryToken = null;
  function setToken(token) {
    memoryToken = token;
    var s = storage();
    try { if (s) { if (token) s.setItem(TOKEN_KEY, token); else s.removeItem(TOKEN_KEY); } } catch (e) { /* private mode */ }
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.from(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      var parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) { return null; }
  }

  var timeFmt = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit" });
  function timeText(iso) {
    var date = iso ? new Date(iso) : new Date();
    return isNaN(date.getTime()) ? "" : timeFmt.format(date);
  }

  function showError(message) {
    var box = byId("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function setStatus(stateName) {
    var status = byId("status");
    status.dataset.state = stateName;
    status.textContent = t("conn." + stateName);
    var banner = byId("banner");
    banner.hidden = stateName !== "offline";
    banner.textContent = stateName === "offline" ? t("chat.reconnecting") : "";
  }

  /** The code of a refused connection: in error.data.code, or (python-socketio given one
   *  dict argument) inside error.message. */
  function refusalCode(error) {
    if (!error) return null;
    if (error.data && typeof error.data.code === "string") return error.data.code;
    var match = /\b(invalid_visitor_token|unauthorized)\b/.exec(String(error.message || ""));
    return match ? match[1] : null;
  }

  function scrollDown() { list.scrollTop = list.scrollHeight; }

  // ------------------------------------------------------------------ rendering

  function bubble(item, side) {
    var li = el("li", "msg " + side + (item.sender_type ? " from-" + item.sender_type : ""));
    if (item.id) li.dataset.id = String(item.id);
    if (side === "in" && item.sender_type) {
      li.appendChild(el("span", "who", t(item.sender_type === "bot" ? "chat.bot" : "chat.agent")));
    }
    var body = el("div", "bubble");
    if (item.text) body.appendChild(el("p", "text", item.text));
    (item.attachments || []).forEach(function (a) {
      var url = safeUrl(a && a.url);
      if (!url) return;
      if (/^image\//.test((a && a.content_type) || "")) {
        var img = el("img", "attachment");
        img.src = url;
        img.alt = (a && a.name) || t("chat.image");
        img.loading = "lazy";
        img.addEventListener("load", scrollDown, { once: true });
        body.appendChild(img);
      } else {
        var link = el("a", "file", (a && a.name) || url);
        link.href = url;
        link.rel = "noopener noreferrer";
        link.target = "_blank";
        body.appendChild(link);
      }
    });
    li.appendChild(body);
    var meta = el("span", "meta");
    meta.appendChild(el("time", null, timeText(item.created_at)));
    li.appendChild(meta);
    var replies = Array.isArray(item.quick_replies) ? item.quick_replies : [];
    if (replies.length && typeof item.id === "number") li.appendChild(quickReplies(replies, item.id));
    return li;
  }

  function quickReplies(replies, itemId) {
    var box = el("div", "quick");
    box.setAttribute("role", "group");
    replies.slice(0, 10).forEach(function (reply) {
      var label = typeof reply === "string" ? reply : reply && (reply.label || reply.text);
      var text = typeof reply === "string" ? reply : reply && (reply.text || reply.label);
      if (!label || !text) return;
      var button = el("button", "chip", label);
      button.type = "button";
      button.addEventListener("click", function () {
        clearQuickReplies();  // one press: every button goes, so none is pressed twice
        send(String(text), itemId);
      });
      box.appendChild(button);
    });
    return box;
  }

  /** The conversation moved on (a newer message, a handoff, an agent): older buttons go. */
  function clearQuickReplies() {
    Array.prototype.forEach.call(list.querySelectorAll(".quick"), function (box) { box.remove(); });
  }

  function render(item) {
    if (!item) return;
    if (item.id && shown.has(item.id)) return;
    if (item.id) shown.add(item.id);
    var side = item.sender_type === "customer" ? "out" : "in";
    if (side === "in") clearQuickReplies();
    var node = bubble(item, side);
    list.appendChild(node);
    if (side === "in") byId("typing").hidden = true;
    scrollDown();
  }

  function welcome() {
    var li = el("li", "msg in from-bot welcome");
    var body = el("div", "bubble");
    body.appendChild(el("p", "text", t("chat.welcome")));
    li.appendChild(body);
    list.appendChild(li);
  }

  function renderPending(entry) {
    var li = el("li", "msg out pending");
    var body = el("div", "bubble");
    body.appendChild(el("p", "text", entry.text));
    li.appendChild(body);
    var meta = el("span", "meta", t("chat.sending"));
    li.appendChild(meta);
    entry.node = li;
    entry.meta = meta;
    list.appendChild(li);
    scrollDown();
  }

  function markFailed(entry, message) {
    entry.state = "failed";
    if (!entry.node) return;
    entry.node.classList.add("failed");
    entry.node.classList.remove("pending");
    entry.meta.textContent = message || t("chat.error");
    if (entry.retryable) {
      var retry = el("button", "retry", t("chat.retry"));
      retry.type = "button";
      retry.addEventListener("click", function () {
        entry.node.classList.remove("failed");
        entry.node.classList.add("pending");
        entry.meta.textContent = t("chat.sending");
        emitPending(entry);
      });
      entry.meta.appendChild(document.createTextNode(" "));
      entry.meta.appendChild(retry);
    }
  }

  // ------------------------------------------------------------------ sending

  function send(text, replyTo) {
    text = String(text || "").trim();
    if (!text) return;
    showError("");
    stopTyping();
    var entry = { clientId: uuid(), text: text, state: "sending", retryable: true,
                  replyTo: typeof replyTo === "number" ? replyTo : null };
    pending.set(entry.clientId, entry);
    renderPending(entry);
    emitPending(entry);
  }

  function emitPending(entry) {
    entry.state = "sending";
    if (!socket || !socket.connected) return;  // sent again on (re)connect
    var payload = { text: entry.text, client_id: entry.clientId };
    if (entry.replyTo !== null) payload.reply_to = entry.replyTo;
    socket.timeout(ACK_TIMEOUT).emit("message", payload,
      function (err, ack) {
        if (!pending.has(entry.clientId)) return;
        if (err) {
          // No answer: maybe stored, maybe not. A retry with the same client_id is safe.
          markFailed(entry, t("chat.error"));
          return;
        }
        if (ack && ack.ok) {
          pending.delete(entry.clientId);
          if (ack.conversation_id) conversationId = ack.conversation_id;
          if (shown.has(ack.id)) { entry.node.remove(); return; }   // history already shows it
          shown.add(ack.id);
          entry.node.classList.remove("pending", "failed");
          entry.node.dataset.id = String(ack.id);
          entry.meta.textContent = timeText(ack.created_at);
          return;
        }
        var error = ack && ack.error ? ack.error : {};
        entry.retryable = false;
        pending.delete(entry.clientId);
        markFailed(entry, t("chat.error") + (error.message ? " (" + error.message + ")" : ""));
        showError(t("chat.error"));
      });
  }

  function flushPending() {
    pending.forEach(function (entry) {
      // a button pressed while offline: the history still offers them, but it was pressed
      if (entry.replyTo !== null) clearQuickReplies();
      if (entry.state !== "failed" || entry.retryable) {
        if (entry.node && !entry.node.isConnected) list.appendChild(entry.node);
        if (entry.node) {
          entry.node.classList.remove("failed");
          entry.node.classList.add("pending");
          entry.meta.textContent = t("chat.sending");
        }
        emitPending(entry);
      }
    });
  }

  // ------------------------------------------------------------------ typing

  function onInput() {
    autosize();
    if (!socket || !socket.connected || !conversationId) return;
    var now = Date.now();
    if (now - typingSent > 2500) {
      typingSent = now;
      socket.emit("typing", { typing: true });
    }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 3000);
  }

  function stopTyping() {
    clearTimeout(typingStop);
    if (typingSent && socket && socket.connected) socket.emit("typing", { typing: false });
    typingSent = 0;
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 140) + "px";
  }

  // ------------------------------------------------------------------ upload

  function upload(file) {
    showError("");
    if (!file) return;
    if (IMAGE_TYPES.indexOf(file.type) < 0) { showError(t("chat.bad_type")); return; }
    if (file.size > MAX_BYTES) { showError(t("chat.too_big")); return; }
    var token = getToken();
    if (!token) { showError(t("chat.upload_failed")); return; }
    var data = new FormData();
    data.append("visitor_token", token);
    data.append("file", file, file.name);
    var text = input.value.trim();
    if (text) data.append("text", text);
    var button = byId("attach");
    button.disabled = true;
    fetch("/webchat/upload", { method: "POST", body: data, credentials: "omit" })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (!response.ok) {
            var message = body && body.error && body.error.message;
            throw new Error(message || "HTTP " + response.status);
          }
          return body;
        });
      })
      .then(function (item) {
        if (text && input.value.trim() === text) { input.value = ""; autosize(); }
        if (item && item.conversation_id) conversationId = item.conversation_id;
        render(item);
      })
      .catch(function (error) {
        showError(t("chat.upload_failed") + (error && error.message ? " (" + error.message + ")" : ""));
      })
      .then(function () { button.disabled = false; fileInput.value = ""; });
  }

  // ------------------------------------------------------------------ socket

  function connect() {
    if (typeof window.io !== "function") {
      setStatus("offline");
      showError(t("chat.error"));
      return;
    }
    socket = window.io("/webchat", {
      // A function, so every (re)connect presents the token we hold at that moment.
      auth: function (cb) {
        var auth = { locale: LOCALE };
        var token = getToken();
        if (token) auth.visitor_token = token;
        else if (LINK) auth.link = LINK;
        if (PRODUCT) auth.product = PRODUCT;
        if (STORE) auth.store = STORE;
        cb(auth);
      },
      transports: ["websocket", "polling"]
    });
    socket.on("connect", function () { setStatus("online"); });
    socket.on("disconnect", function (reason) {
      setStatus("offline");
      if (reason === "io server disconnect") socket.connect();
    });
    socket.io.on("reconnect_attempt", function () { setStatus("connecting"); });
    socket.on("connect_error", function (error) {
      if (refusalCode(error) === "invalid_visitor_token") {
        // Forged or expired: forget it and start as a new visitor.
        setToken(null);
        setTimeout(function () { socket.connect(); }, 50);
        return;
      }
      setStatus("offline");
      // Refused by the server (not a network error): socket.io does not retry by itself.
      if (!socket.active) setTimeout(function () { socket.connect(); }, 3000);
    });
    socket.on("session", function (data) {
      if (!data) return;
      if (typeof data.visitor_token === "string" && data.visitor_token) setToken(data.visitor_token);
      if (LINK) {  // the code is single-use: never present it again
        LINK = "";
        if (window.history && window.history.replaceState) {
          window.history.replaceState(null, "", window.location.pathname);
        }
      }
      if (data.conversation_id) conversationId = data.conversation_id;
    });
    socket.on("history", function (data) {
      var items = data && Array.isArray(data.items) ? data.items : [];
      if (data && data.conversation_id) conversationId = data.conversation_id;
      // The server's history is the truth: rebuild, then put unacknowledged sends after it.
      while (list.firstChild) list.removeChild(list.firstChild);
      shown = new Set();
      welcome();
      items.forEach(render);
      flushPending();
      scrollDown();
    });
    socket.on("message", function (item) {
      if (item && item.conversation_id) conversationId = item.conversation_id;
      render(item);
    });
    socket.on("typing", function (data) {
      if (!data || data.sender_type === "customer") return;
      var box = byId("typing");
      box.hidden = !data.typing;
      clearTimeout(typingHide);
      if (data.typing) {
        typingHide = setTimeout(function () { box.hidden = true; }, 8000);
        scrollDown();
      }
    });
    socket.on("error", function (error) {
      if (error && error.message) showError(t("chat.error") + " (" + error.message + ")");
    });
  }

  // ------------------------------------------------------------------ wiring

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) { input.focus(); return; }
    input.value = "";
    autosize();
    send(text);
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", onInput);
  byId("attach").addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () { upload(fileInput.files && fileInput.files[0]); });

  // "Continue on LINE / by phone": a one-time code, a deep link and a QR for the PC screen.
  function showHandover(target, reply) {
    var box = byId("handover");
    box.querySelector(".handover-hint").textContent = t("chat.handover_" + target);
    var qr = box.querySelector(".handover-qr");
    qr.hidden = target !== "line";
    if (target === "line") {
      qr.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(String(reply.qr_svg || ""));
    }
    var link = box.querySelector(".handover-link");
    link.textContent = target === "line" ? t("chat.open_line") : t("chat.call_now");
    var url = String(reply.url || "");
    link.href = (target === "phone" && /^tel:\+?[0-9]+$/.test(url)) ? url : (safeUrl(url) || "#");
    box.querySelector(".handover-code").textContent = t("chat.your_code") + " " + String(reply.code || "");
    box.hidden = false;
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.continue"), function (button) {
    button.addEventListener("click", function () {
      if (!socket) return;
      var target = button.dataset.target;
      socket.timeout(ACK_TIMEOUT).emit("link", { target: target }, function (err, reply) {
        if (err || !reply || !reply.ok) {
          var code = reply && reply.error && reply.error.code;
          showError(code === "no_conversation" ? t("chat.say_something_first") : t("chat.error"));
          return;
        }
        showHandover(target, reply);
      });
    });
  });
  byId("handover").querySelector(".handover-close").addEventListener("click", function () {
    byId("handover").hidden = true;
  });

  // Inside the /widget.js iframe: a close button that asks the host page to close us.
  if (window.parent && window.parent !== window) {
    root.classList.add("embedded");
    var close = byId("close");
    close.hidden = false;
    close.addEventListener("click", function () {
      window.parent.postMessage({ type: "omohub:close" }, "*");
    });
  }

  welcome();
  connect();
})();
