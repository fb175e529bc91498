/* omohub video session page: one RTCPeerConnection between an agent and a customer.
 *
 *  - signalling goes through Socket.IO /video, which relays only within this session;
 *    the agent makes the offer as soon as both are there, the customer answers;
 *  - the media flows browser to browser over host candidates (no STUN/TURN servers);
 *  - document.body.dataset.rtcState always equals pc.connectionState (tests, monitoring);
 *  - strings reach the DOM through textContent only.
 */
(function () {
  "use strict";

  var root = document.getElementById("video");
  if (!root) return;

  var MESSAGES = readJSON("i18n");
  var ROLE = root.dataset.role;
  var LINK = root.dataset.link;
  var credential = null;

  var pc = new RTCPeerConnection({ iceServers: [] });
  var remoteStream = new MediaStream();
  var socket = null;
  var local = null;
  var offered = false;
  var ended = false;
  var incoming = Promise.resolve();  // signals are applied one after another, in order

  function readJSON(id) {
    var node = document.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  }

  function t(key) {
    return Object.prototype.hasOwnProperty.call(MESSAGES, key) ? MESSAGES[key] : key;
  }

  function $(id) { return document.getElementById(id); }

  function syncState() { document.body.dataset.rtcState = pc.connectionState; }

  function status(key) { $("status").textContent = t("video.status." + key); }

  function notice(text) {
    $("notice").textContent = text;
    $("notice").hidden = !text;
  }

  function fail(error) {
    if (!ended) notice(t("video.failed") + (error && error.message ? " (" + error.message + ")" : ""));
  }

  // ---------------------------------------------------------------- peer connection

  pc.addEventListener("connectionstatechange", function () {
    syncState();
    if (ended) return;
    var state = pc.connectionState;
    if (state === "connected") status("connected");
    else if (state === "disconnected" || state === "failed") status("connection_lost");
  });
  pc.addEventListener("icecandidate", function (event) {
    if (event.candidate) signal({ candidate: event.candidate.toJSON() });
  });
  pc.addEventListener("track", function (event) {
    remoteStream.addTrack(event.track);
    if ($("remote").srcObject !== remoteStream) $("remote").srcObject = remoteStream;
  });

  function signal(data) {
    if (socket && socket.connected && !ended) socket.emit("signal", data);
  }

  function makeOffer() {
    if (offered || ROLE !== "agent" || ended) return;
    offered = true;
    pc.createOffer().then(function (offer) { return pc.setLocalDescription(offer); })
      .then(function () { signal({ description: pc.localDescription.toJSON() }); })
      .catch(fail);
  }

  function onSignal(data) {
    incoming = incoming.then(function () {
      if (ended || !data) return null;
      if (data.description) return applyDescription(data.description);
      if (data.candidate) return pc.addIceCandidate(data.candidate);
      return null;
    }).catch(fail);
  }

  function applyDescription(description) {
    return pc.setRemoteDescription(description).then(function () {
      if (description.type !== "offer") return null;
      return pc.createAnswer().then(function (answer) { return pc.setLocalDescription(answer); })
        .then(function () { signal({ description: pc.localDescription.toJSON() }); });
    });
  }

  // ---------------------------------------------------------------- media

  function startMedia() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.reject(new Error("getUserMedia unavailable"));
    }
    return navigator.mediaDevices.getUserMedia({ audio: true, video: true }).then(function (stream) {
      local = stream;
      $("local").srcObject = stream;
      stream.getTracks().forEach(function (track) { pc.addTrack(track, stream); });
    });
  }

  /** Without a camera or microphone the call still shows the other side. */
  function withoutMedia() {
    notice(t("video.no_media"));
    $("mute").disabled = true;
    $("camera").disabled = true;
    if (ROLE === "agent") {  // the offer must still ask for the customer's audio and video
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
    }
  }

  function toggle(tracks, button, offKey, onKey) {
    var off = button.getAttribute("aria-pressed") !== "true";
    tracks.forEach(function (track) { track.enabled = !off; });
    button.setAttribute("aria-pressed", String(off));
    button.textContent = t(off ? onKey : offKey);
  }

  // ---------------------------------------------------------------- signalling

  function connect() {
    if (ended) return;
    if (typeof window.io !== "function") { status("offline"); return; }
    socket = window.io("/video", { auth: { credential: credential }, transports: ["websocket", "polling"] });
    socket.on("connect", function () {
      socket.emit("hello", function (answer) {
        if (!answer || !answer.ok || ended) return;
        if (answer.present && answer.present.length) peerHere();
        else status("waiting");
      });
    });
    socket.on("peer-joined", peerHere);
    socket.on("peer-left", function () { if (!ended) status("peer_left"); });
    socket.on("signal", onSignal);
    socket.on("ended", finish);
    socket.on("disconnect", function () { if (!ended) status("reconnecting"); });
    socket.on("connect_error", function (error) {
      var code = error && error.data && error.data.code;
      if (code === "session_ended") finish();
      else if (code) { status("offline"); notice(t("video.error." + code)); }
    });
  }

  function peerHere() {
    if (ended) return;
    status("connecting");
    makeOffer();
  }

  function hangUp() {
    if (ended) return;
    $("hangup").disabled = true;
    if (socket && socket.connected) socket.timeout(5000).emit("hangup", finish);
    else finish();
  }

  function finish() {
    if (ended) return;
    ended = true;
    pc.close();
    syncState();  // close() fires no connectionstatechange
    if (local) local.getTracks().forEach(function (track) { track.stop(); });
    if (socket) socket.disconnect();
    status("ended");
    ["mute", "camera", "hangup"].forEach(function (id) { $(id).disabled = true; });
  }

  /** Spend the link (single use) for this page's socket credential. Done by the script,
   *  not by loading the page, so a chat app fetching the URL for a preview spends nothing. */
  function join() {
    return fetch("/video/" + encodeURIComponent(root.dataset.session) + "/join", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ t: LINK }), credentials: "omit", cache: "no-store"
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Refused((body.error && body.error.code) || "bad_link");
        credential = body.credential;
      });
    });
  }

  function Refused(code) { this.code = code; }

  function refused(error) {
    if (!(error instanceof Refused)) throw error;
    ended = true;
    status("offline");
    notice(t("video.error." + error.code) + " " + t("video.error.hint"));
    ["mute", "camera", "hangup"].forEach(function (id) { $(id).disabled = true; });
  }

  // ---------------------------------------------------------------- wiring

  syncState();
  // The link's token is about to be spent: keep it out of the address bar and the history.
  history.replaceState(null, "", window.location.pathname);
  $("mute").addEventListener("click", function (event) {
    if (local) toggle(local.getAudioTracks(), event.currentTarget, "video.mute", "video.unmute");
  });
  $("camera").addEventListener("click", function (event) {
    if (local) toggle(local.getVideoTracks(), event.currentTarget, "video.camera_off", "video.camera_on");
  });
  $("hangup").addEventListener("click", hangUp);
  join().then(function () {
    return startMedia().catch(withoutMedia).then(connect);
  }).catch(refused).catch(fail);
})();
