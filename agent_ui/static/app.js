/* omohub agent inbox: vanilla JS, no framework.
 *
 * Rules this file keeps:
 *  - customer-supplied strings only ever reach the DOM through textContent /
 *    createTextNode (the el() helper below); never innerHTML with data;
 *  - the API is the source of truth; Socket.IO events are notifications, and a
 *    reconnect reloads from the API;
 *  - every non-GET fetch carries the X-CSRF-Token header.
 */
(function () {
  "use strict";

  var root = document.getElementById("inbox");
  if (!root) return;

  var ME = Number(root.dataset.agentId);
  var LOCALE = root.dataset.locale || document.documentElement.lang || "ja";
  var MESSAGES = readJSON("i18n");
  var SOCKET_TOKEN = meta("socket-token");
  var PAGE_SIZE = 30;

  var state = {
    filters: { status: "open", assignee: "", channel: "", q: "" },
    list: [],            // conversation summaries, newest activity first
    cursor: null,
    listSeq: 0,          // guards against out-of-order list responses
    openId: null,
    open: null,          // detail of the open conversation (without timeline)
    itemIds: new Set(),  // timeline item ids already rendered
    openSeq: 0,
    mode: "reply",
    connectedOnce: false,
    typingTimer: null,
    typingSentAt: 0,
    typingStopTimer: null,
    readTimer: null,
    drafts: {},          // unsent reply text per conversation
    assistSeq: 0,        // guards against out-of-order article suggestions
    timelineAtEnd: true, // the agent reads the newest items (see keepTimelineAtEnd)
    timelineAutoTop: -1, // where our own last scroll to the end left the timeline
    agentNames: {}       // agent id → name, for assignees named only by id in live updates
  };

  // ---------------------------------------------------------------- helpers

  function readJSON(id) {
    var node = document.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  }

  function meta(name) {
    var node = document.querySelector('meta[name="' + name + '"]');
    return node ? node.getAttribute("content") : "";
  }

  /** t("system.channel_switched", {from: "Web", to: "LINE"}) */
  function t(key, params) {
    var text = Object.prototype.hasOwnProperty.call(MESSAGES, key) ? MESSAGES[key] : key;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, function (whole, name) {
        return Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole;
      });
    }
    return text;
  }

  function has(key) { return Object.prototype.hasOwnProperty.call(MESSAGES, key); }

  function channelName(channel) {
    return has("channel." + channel) ? t("channel." + channel) : String(channel || "");
  }

  /** Build an element. Children that are strings become text nodes — never HTML. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    if (children === null || children === undefined) return node;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "string" || typeof child === "number"
        ? document.createTextNode(String(child)) : child);
    });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function $(id) { return document.getElementById(id); }

  /** Only http(s) URLs (relative ones resolve against this page) may become src/href. */
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      var parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) { return null; }
  }

  function initials(name) {
    // invisible format characters (bidi controls, zero-width joiners) are never an initial
    var text = String(name || "?").replace(/\p{Cf}/gu, "").trim();
    if (!text) return "?";
    var parts = text.split(/\s+/);
    if (parts.length > 1 && /^[A-Za-z]/.test(text)) return (parts[0][0] + parts[1][0]).toUpperCase();
    return Array.from(text)[0].toUpperCase();
  }

  function hue(id) {
    var n = Number(id);
    return isFinite(n) ? (n * 47) % 360 : 210;
  }

  var timeFmt = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit" });
  var dayFmt = new Intl.DateTimeFormat(LOCALE, { month: "short", day: "numeric" });
  var fullFmt = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" });

  function when(iso, full) {
    if (!iso) return "";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    if (full) return fullFmt.format(date);
    var now = new Date();
    return date.toDateString() === now.toDateString() ? timeFmt.format(date) : dayFmt.format(date);
  }

  function timeEl(iso, full) {
    return el("time", { datetime: iso || "", title: iso ? fullFmt.format(new Date(iso)) : null },
      when(iso, full));
  }

  var toastTimer = null;
  function toast(message) {
    var box = $("toast");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  function errorText(error) {
    if (error && error.body && error.body.error && error.body.error.message) {
      return t("error.prefix") + error.body.error.message;
    }
    return t("error.generic");
  }

  // ---------------------------------------------------------------- API

  /** dom.js's api(): X-CSRF-Token on non-GET, 401 → /login, 204 or no JSON body → null;
   * a refusal rejects with .status and the parsed body as .body (see errorText). */
  var api = window.omohubDom.api;

  // ---------------------------------------------------------------- list

  function listQuery(cursor) {
    var params = new URLSearchParams();
    var f = state.filters;
    if (f.status) params.set("status", f.status);
    if (f.channel) params.set("channel", f.channel);
    if (f.assignee) params.set("assignee", f.assignee);
    if (f.q) params.set("q", f.q);
    params.set("limit", String(PAGE_SIZE));
    if (cursor) params.set("cursor", cursor);
    return "/api/conversations?" + params.toString();
  }

  function loadList() {
    var seq = ++state.listSeq;
    $("conv-list").setAttribute("aria-busy", "true");
    return api("GET", listQuery(null)).then(function (page) {
      if (seq !== state.listSeq) return;
      state.list = page.items || [];
      state.cursor = page.next_cursor || null;
      renderList();
    }).catch(function (error) {
      if (seq === state.listSeq) toast(errorText(error));
    }).then(function () {
      if (seq === state.listSeq) $("conv-list").setAttribute("aria-busy", "false");
    });
  }

  function loadMore() {
    if (!state.cursor) return;
    var seq = state.listSeq;
    var button = $("load-more");
    button.disabled = true;
    api("GET", listQuery(state.cursor)).then(function (page) {
      if (seq !== state.listSeq) return;
      var known = new Set(state.list.map(function (c) { return c.id; }));
      (page.items || []).forEach(function (c) { if (!known.has(c.id)) state.list.push(c); });
      state.cursor = page.next_cursor || null;
      renderList();
    }).catch(function (error) { toast(errorText(error)); })
      .then(function () { button.disabled = false; });
  }

  /** Would the server's list, with the current filters, contain this summary? */
  function matchesFilters(summary) {
    var f = state.filters;
    if (f.status && summary.status !== f.status) return false;
    if (f.channel && (summary.channels || []).indexOf(f.channel) < 0) return false;
    if (f.assignee === "me" && summary.assignee_id !== ME) return false;
    if (f.assignee === "unassigned" && summary.assignee_id !== null) return false;
    if (f.q) {
      var needle = f.q.toLowerCase();
      var hay = ((summary.customer && summary.customer.display_name) || "") + "\n" +
        ((summary.last_message && summary.last_message.text) || "");
      if (hay.toLowerCase().indexOf(needle) < 0) return false;
    }
    return true;
  }

  function byActivity(a, b) {
    var x = a.last_activity_at || "", y = b.last_activity_at || "";
    if (x !== y) return x < y ? 1 : -1;
    return b.id - a.id;
  }

  function upsertSummary(summary) {
    var index = state.list.findIndex(function (c) { return c.id === summary.id; });
    if (summary.id === state.openId) summary = Object.assign({}, summary, { unread_count: 0 });
    if (!matchesFilters(summary)) {
      if (index >= 0) state.list.splice(index, 1);
    } else {
      if (index >= 0) state.list[index] = summary;
      else {
        // Beyond the loaded page? Then "load more" will bring it in its turn.
        var last = state.list[state.list.length - 1];
        if (state.cursor && last && byActivity(summary, last) > 0) return renderList();
        state.list.push(summary);
      }
      state.list.sort(byActivity);
    }
    renderList();
  }

  function renderList() {
    var list = $("conv-list");
    var focusedId = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.conversationId : null;
    clear(list);
    state.list.forEach(function (c) { list.appendChild(listItem(c)); });
    $("list-empty").hidden = state.list.length > 0;
    $("load-more").hidden = !state.cursor;
    if (focusedId) {
      var again = list.querySelector('[data-conversation-id="' + Number(focusedId) + '"]');
      if (again) again.focus();
    }
    var unread = state.list.reduce(function (n, c) { return n + (c.unread_count || 0); }, 0);
    document.title = (unread ? "(" + unread + ") " : "") + t("inbox.title") + " · omohub";
  }

  /** A customer's name as the agent reads it: an anonymous visitor's "Guest 1A2B" is said
   *  in the agent's language (the API marks it with guest_code). */
  function personName(person) {
    if (person && person.guest_code) return t("customer.guest", { code: person.guest_code });
    return (person && person.display_name) || "";
  }

  function listItem(c) {
    var name = personName(c.customer) || "#" + c.id;
    var preview = (c.last_message && c.last_message.text) || "";
    var unread = c.unread_count || 0;
    var channels = el("span", { class: "badges" }, (c.channels || []).map(function (ch) {
      return el("span", { class: "badge ch-" + ch, title: channelName(ch) }, channelName(ch));
    }));
    var button = el("button", {
      type: "button", class: "conv-item" + (unread ? " has-unread" : ""),
      dataset: { conversationId: String(c.id) },
      "aria-current": c.id === state.openId ? "true" : null,
      onclick: function () { openConversation(c.id); }
    }, [
      el("span", { class: "avatar", "aria-hidden": "true", dataset: { hue: String(hue(c.customer && c.customer.id)) } },
        initials(name)),
      el("span", { class: "conv-item-main" }, [
        el("span", { class: "row" }, [
          el("span", { class: "name" }, name),
          timeEl(c.last_activity_at)
        ]),
        el("span", { class: "row" }, [
          el("span", { class: "preview" }, preview),
          unread ? el("span", { class: "unread", "aria-label": t("inbox.unread", { n: unread }) },
            String(unread)) : null
        ]),
        el("span", { class: "row meta" }, [
          channels,
          c.status !== "open" ? el("span", { class: "pill st-" + c.status }, t("inbox.status." + c.status)) : null,
          c.handoff === "waiting_for_agent" ? el("span", { class: "pill waiting" }, t("inbox.waiting")) : null,
          c.assignee_id === ME ? el("span", { class: "mine" }, t("inbox.filter.mine")) : null,
          (c.tags || []).length ? el("span", { class: "tag-mini" }, "#" + c.tags.join(" #")) : null
        ])
      ])
    ]);
    return el("li", null, button);
  }

  function applyAvatarHues(scope) {
    // CSP forbids inline styles in markup; CSSOM properties set from script are allowed.
    (scope || document).querySelectorAll("[data-hue]").forEach(function (node) {
      node.style.setProperty("--hue", node.dataset.hue);
    });
  }

  // ---------------------------------------------------------------- one conversation

  function openConversation(id, keepHash) {
    id = Number(id);
    if (!id) return;
    if (state.openId !== id) {
      stopTyping();
      hideAssist();
      $("video-share").hidden = true;
      if (state.openId) state.drafts[state.openId] = $("reply-text").value;
      $("reply-text").value = state.drafts[id] || "";
      showComposerError("");
    }
    state.openId = id;
    state.itemIds = new Set();
    if (!keepHash && window.location.hash !== "#c" + id) {
      history.replaceState(null, "", "#c" + id);
    }
    root.classList.add("has-open");
    var seq = ++state.openSeq;
    var local = state.list.find(function (c) { return c.id === id; });
    if (local) { local.unread_count = 0; renderList(); }
    $("conv-none").hidden = true;
    $("conv").hidden = false;
    $("timeline").setAttribute("aria-busy", "true");
    return api("GET", "/api/conversations/" + id).then(function (detail) {
      if (seq !== state.openSeq) return;
      renderConversation(detail);
      suggestArticles();
      markRead();
      loadCustomer(detail.customer.id, seq);
    }).catch(function (error) {
      if (seq !== state.openSeq) return;
      if (error.status === 404) closeConversation();
      toast(errorText(error));
    });
  }

  function closeConversation() {
    if (state.openId) state.drafts[state.openId] = $("reply-text").value;
    stopTyping();
    state.openId = null;
    state.open = null;
    root.classList.remove("has-open");
    $("conv").hidden = true;
    $("conv-none").hidden = false;
    $("customer-panel").hidden = true;
    hideAssist();
    history.replaceState(null, "", window.location.pathname + window.location.search);
    renderList();
    announceConversation(null);
  }

  /** Tells other scripts of the page (the softphone) which ticket is open. */
  function announceConversation(detail) {
    var identities = (detail && detail.customer && detail.customer.identities) || [];
    document.dispatchEvent(new CustomEvent("omohub:conversation", { detail: detail ? {
      id: detail.id, phone: identities.some(function (i) { return i.kind === "phone"; }) } : null }));
  }

  function renderConversation(detail) {
    var timeline = detail.timeline || [];
    state.open = Object.assign({}, detail);
    delete state.open.timeline;
    if (detail.assignee) state.agentNames[detail.assignee.id] = detail.assignee.name;
    renderHeader();
    renderReplyChannels();
    announceConversation(detail);
    var list = $("timeline");
    clear(list);
    state.itemIds = new Set();
    timeline.forEach(function (item) { appendItem(item, false); });
    list.setAttribute("aria-busy", "false");
    scrollTimeline(true);
    $("typing").hidden = true;
  }

  function renderHeader() {
    var c = state.open;
    if (!c) return;
    $("conv-name").textContent = personName(c.customer);
    var status = $("conv-status");
    status.textContent = t("inbox.status." + c.status);
    status.className = "pill st-" + c.status;
    var assignee = $("conv-assignee");
    if (c.assignee_id === ME) assignee.textContent = t("conv.assigned_to", { name: t("conv.you") });
    else if (c.assignee_id) {
      assignee.textContent = t("conv.assigned_to", {
        name: c.assignee && c.assignee.id === c.assignee_id ? c.assignee.name : "#" + c.assignee_id
      });
    } else assignee.textContent = t("conv.unassigned");
    var show = {
      "assign-me": c.assignee_id !== ME,
      "unassign": c.assignee_id !== null && c.assignee_id !== undefined,
      "pending": c.status === "open",
      "resolve": c.status !== "resolved",
      "reopen": c.status !== "open"
    };
    document.querySelectorAll(".conv-actions [data-action]").forEach(function (button) {
      button.hidden = !show[button.dataset.action];
    });
    renderTags();
  }

  function renderTags() {
    var list = $("tag-list");
    clear(list);
    (state.open.tags || []).forEach(function (tag) {
      list.appendChild(el("li", { class: "tag" }, [
        el("span", null, tag),
        el("button", {
          type: "button", class: "tag-x", "aria-label": t("conv.remove_tag", { tag: tag }),
          onclick: function () {
            saveTags(state.open.tags.filter(function (x) { return x !== tag; }));
          }
        }, "×")
      ]));
    });
  }

  function renderReplyChannels() {
    var select = $("reply-channel");
    var channels = state.open.reply_channels || [];
    var previous = select.value;
    clear(select);
    channels.forEach(function (ch) { select.appendChild(el("option", { value: ch }, channelName(ch))); });
    var preferred = channels.indexOf(state.open.last_channel) >= 0 ? state.open.last_channel : channels[0];
    if (previous && channels.indexOf(previous) >= 0 && select.dataset.conversationId === String(state.openId)) {
      preferred = previous;
    }
    select.dataset.conversationId = String(state.openId);
    if (preferred) select.value = preferred;
    updateComposer();
  }

  function updateComposer() {
    var note = state.mode === "note";
    var composer = $("composer");
    composer.dataset.mode = state.mode;
    composer.querySelectorAll("[data-mode]").forEach(function (button) {
      if (button.tagName === "BUTTON") button.setAttribute("aria-pressed", String(button.dataset.mode === state.mode));
    });
    $("reply-text").placeholder = t(note ? "conv.note_placeholder" : "conv.placeholder");
    var noChannel = !note && state.open && !(state.open.reply_channels || []).length;
    $("channel-pick").hidden = note || noChannel;
    $("send").textContent = t(note ? "conv.add_note" : "conv.send");
    $("send").disabled = Boolean(noChannel);
    showComposerError(noChannel ? t("conv.no_channel") : (note ? "" : unreachableWarning($("reply-channel").value)));
  }

  function showComposerError(message) {
    var box = $("composer-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function scrollTimeline(force) {
    var list = $("timeline");
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 160;
    if (force || nearBottom || state.timelineAtEnd) toTimelineEnd(list);
  }

  function toTimelineEnd(list) {
    list.scrollTop = list.scrollHeight;
    state.timelineAtEnd = true;
    state.timelineAutoTop = list.scrollTop;  // the scroll event this causes is ours
  }

  /** While the agent is at the end of the timeline it stays there, also when the panels
   *  around it (suggestions, composer, typing line) take its height; scrolling up to
   *  read stops that until they come back down. */
  function keepTimelineAtEnd() {
    var list = $("timeline");
    list.addEventListener("scroll", function () {
      // Our own scrolling says nothing of where the agent wants to be; measured late (after
      // a panel took the timeline's height) it would look like a scroll away from the end.
      if (list.scrollTop === state.timelineAutoTop) return;
      state.timelineAtEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    }, { passive: true });
    if (!window.ResizeObserver) return;
    new ResizeObserver(function () {
      if (state.timelineAtEnd) toTimelineEnd(list);
    }).observe(list);
  }

  function senderLabel(item) {
    if (item.sender_type === "customer") return state.open ? personName(state.open.customer) : t("sender.customer");
    if (item.sender_type === "agent") {
      if (item.agent_id === ME) return t("conv.you");
      return t("sender.agent");
    }
    return t("sender." + item.sender_type);
  }

  function systemText(item) {
    var data = item.data || {};
    var event = data.event || "";
    var params = {};
    Object.keys(data).forEach(function (k) { params[k] = data[k]; });
    if (event === "channel_switched") {
      params.from = channelName(data.from);
      params.to = channelName(data.to);
    }
    if (event === "status_changed" && data.status) params.status = t("inbox.status." + data.status);
    if (event === "assigned" && "assignee_id" in data) {
      if (data.assignee_id === null) return t("system.unassigned");
      if (data.assignee_name) {
        return t("system.assigned_to", { name: data.assignee_id === ME ? t("conv.you") : data.assignee_name });
      }
    }
    if (event === "bot_feedback" && typeof data.helpful === "boolean") {
      return t(data.helpful ? "system.bot_feedback_helpful" : "system.bot_feedback_unhelpful");
    }
    if (event === "handoff" && data.reason && has("system.handoff_reason")) {
      params.reason = has("handoff.reason." + data.reason) ? t("handoff.reason." + data.reason) : String(data.reason);
      return t("system.handoff_reason", params);
    }
    if (event === "identity_given" && data.kind === "phone") return t("system.identity_given_phone", params);
    if (event && has("system." + event)) return t("system." + event, params);
    return item.text || t("system.event");
  }

  function appendItem(item, live) {
    if (!item || state.itemIds.has(item.id)) return;
    state.itemIds.add(item.id);
    var node = renderItem(item);
    var list = $("timeline");
    // Keep created_at order even if events arrive out of order.
    var after = null;
    var nodes = list.children;
    for (var i = nodes.length - 1; i >= 0; i--) {
      if ((nodes[i].dataset.createdAt || "") <= (item.created_at || "")) { after = nodes[i]; break; }
    }
    if (!after) list.insertBefore(node, list.firstChild);
    else list.insertBefore(node, after.nextSibling);
    applyAvatarHues(node);
    if (live) scrollTimeline(item.sender_type === "agent" && item.agent_id === ME);
  }

  function replaceItem(item) {
    var old = $("timeline").querySelector('[data-item-id="' + Number(item.id) + '"]');
    if (!old) return;
    old.replaceWith(renderItem(item));
  }

  function channelBadge(channel) {
    return el("span", { class: "badge ch-" + channel, title: t("conv.via", { channel: channelName(channel) }) },
      channelName(channel));
  }

  function renderItem(item) {
    var base = { "data-item-id": item.id, "data-created-at": item.created_at || "" };
    if (item.type === "system") {
      base.class = "item system";
      return el("li", base, el("p", { class: "system-note" }, [
        channelBadge(item.channel), " ", systemText(item), " · ", timeEl(item.created_at)
      ]));
    }
    var internal = item.internal || item.direction === "internal";
    var side = internal ? "note" : item.direction === "out" ? "out" : "in";
    var classes = ["item", "msg", side, "type-" + item.type, "from-" + item.sender_type];
    var failed = item.delivery_status === "failed";
    if (failed) classes.push("failed");
    var data = item.data && typeof item.data === "object" ? item.data : {};
    if (data.unsent) classes.push("unsent");
    base.class = classes.join(" ");
    var body = [];
    if (item.type !== "message" && has("item." + item.type)) {
      body.push(el("p", { class: "kind" }, t("item." + item.type)));
    }
    if (item.type === "call") body.push(callCard(data));
    if (item.type === "video") body.push(videoCard(data));
    if (item.type === "recording") {
      body.push(el("audio", { class: "recording", src: "/api/recordings/" + encodeURIComponent(String(item.id)),
        controls: true, preload: "none" }));
    }
    if (data.sticker) body.push(stickerEl(data.sticker));
    if (data.location && typeof data.location === "object") body.push(locationEl(data.location));
    if (item.text) body.push(el("p", { class: "text" }, item.text));
    if (typeof data.full_text === "string" && data.full_text && data.full_text !== item.text) {
      body.push(el("details", { class: "full-text" }, [
        el("summary", null, t("item.show_full")),
        el("div", { class: "full-text-body" }, data.full_text)
      ]));
    }
    var attachments = item.attachments || [];
    if (attachments.length) body.push(renderAttachments(attachments));
    if (data.media && typeof data.media === "object") body.push(mediaNote(data.media));
    if (data.unsupported) {
      body.push(el("p", { class: "muted-note" }, t("item.unsupported", {
        type: typeof data.unsupported === "string" ? data.unsupported
          : String((data.unsupported && data.unsupported.type) || "?") })));
    }
    if (data.unsent) body.push(el("p", { class: "unsent-label" }, t("item.unsent")));
    var metaLine = el("p", { class: "meta" }, [
      channelBadge(item.channel),
      internal ? el("span", { class: "note-label" }, t("conv.note")) : null,
      el("span", { class: "who" }, senderLabel(item)),
      timeEl(item.created_at, true),
      side === "out" ? deliveryEl(item) : null
    ]);
    var bubble = el("div", { class: "bubble" }, body);
    var children = [metaLine, bubble];
    if (failed) {
      children.push(el("p", { class: "delivery-error", role: "note" },
        t("conv.failed") + (item.error ? " — " + item.error : "")));
    }
    return el("li", base, children);
  }

  function duration(seconds) {
    var n = Math.max(0, Math.round(Number(seconds)));
    if (!isFinite(n)) return "";
    var h = Math.floor(n / 3600), m = Math.floor((n % 3600) / 60), s = n % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function callCard(data) {
    var status = data.status ? String(data.status) : "";
    var hasDuration = data.duration !== null && data.duration !== undefined && data.duration !== "" &&
      isFinite(Number(data.duration));
    return el("div", { class: "call-card" }, [
      el("span", { class: "call-icon", "aria-hidden": "true" }, "☎"),
      status ? el("span", { class: "call-status st-" + status.replace(/[^\w-]/g, "") },
        has("call.status." + status) ? t("call.status." + status) : status) : null,
      hasDuration ? el("span", { class: "call-duration" },
        t("call.duration", { duration: duration(data.duration) })) : null
    ]);
  }

  /** A video session: its state, who joined and, once ended, how long it lasted. */
  function videoCard(data) {
    var status = data.status ? String(data.status) : "";
    var joined = data.joined && typeof data.joined === "object" ? Object.keys(data.joined) : [];
    var ended = status === "ended" && data.duration !== null && data.duration !== undefined &&
      isFinite(Number(data.duration));
    return el("div", { class: "call-card video-card", "data-status": status }, [
      status ? el("span", { class: "call-status st-" + status.replace(/[^\w-]/g, "") },
        has("video.state." + status) ? t("video.state." + status) : status) : null,
      joined.length ? el("span", { class: "video-joined" }, t("video.joined", {
        who: joined.map(function (role) { return t("sender." + role); }).join(", ") })) : null,
      ended ? el("span", { class: "call-duration" },
        t("call.duration", { duration: duration(data.duration) })) : null
    ]);
  }

  // ---------------------------------------------------------------- video sessions

  /** Starts a video session: the agent's page opens in a new tab, the customer's link is
   * shown for copying (into a reply, or anywhere the customer reads it). */
  function startVideo() {
    var id = state.openId;
    if (!id) return;
    var button = $("video-start");
    button.disabled = true;
    var tab = window.open("", "_blank");  // now, inside the click, so no popup blocker stops it
    api("POST", "/api/conversations/" + id + "/video").then(function (session) {
      var agentUrl = onThisOrigin(session.agent_url);
      if (tab) { tab.opener = null; tab.location.replace(agentUrl); }
      if (state.openId !== id) return;
      $("video-link").value = String(session.customer_url || "");
      $("video-share").hidden = false;
    }).catch(function (error) {
      if (tab) tab.close();
      toast(errorText(error));
    }).then(function () { button.disabled = false; });
  }

  /** The agent's page on this inbox's own origin, whatever OMOHUB_PUBLIC_URL says. */
  function onThisOrigin(url) {
    var parsed = new URL(String(url), window.location.href);
    return window.location.origin + parsed.pathname + parsed.search;
  }

  function copyVideoLink() {
    var input = $("video-link");
    input.select();
    var copied = navigator.clipboard && navigator.clipboard.writeText
      ? navigator.clipboard.writeText(input.value) : Promise.reject(new Error("no clipboard"));
    copied.then(function () { toast(t("conv.video_copied")); }).catch(function () {});
  }

  function stickerEl(sticker) {
    var keywords = sticker && Array.isArray(sticker.keywords)
      ? sticker.keywords.filter(function (k) { return typeof k === "string" && k; }) : [];
    return el("p", { class: "sticker" }, [
      el("span", { class: "sticker-label" }, t("item.sticker")),
      keywords.length ? el("span", { class: "sticker-keywords" }, keywords.join(", ")) : null
    ]);
  }

  function locationEl(location) {
    var url = typeof location.map_url === "string" && /^https:\/\//i.test(location.map_url)
      ? location.map_url : null;
    return el("div", { class: "location" }, [
      el("p", { class: "location-title" }, [el("span", { "aria-hidden": "true" }, "📍 "),
        String(location.title || t("item.location"))]),
      location.address ? el("p", { class: "location-address" }, String(location.address)) : null,
      url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, t("item.open_map")) : null
    ]);
  }

  function mediaNote(media) {
    var status = media.status ? String(media.status) : "";
    if (!media.reason && !/fail|error|expired|too_large/i.test(status)) return null;
    var label = has("media.status." + status) ? t("media.status." + status) : (status || t("media.status.failed"));
    return el("p", { class: "media-note", role: "note" },
      t("item.media_failed", { status: label }) + (media.reason ? " — " + String(media.reason) : ""));
  }

  function deliveryEl(item) {
    var status = item.delivery_status || "";
    if (!status || status === "received") return null;
    return el("span", { class: "delivery d-" + status, title: item.error || null },
      has("delivery." + status) ? t("delivery." + status) : status);
  }

  function renderAttachments(attachments) {
    return el("ul", { class: "attachments" }, attachments.map(function (a) {
      var url = safeUrl(a && a.url);
      var name = (a && a.name) || t("conv.attachment");
      var type = (a && a.content_type) || "";
      if (url && /^image\//.test(type)) {
        return el("li", null, el("a", { href: url, target: "_blank", rel: "noopener noreferrer" },
          el("img", { src: url, alt: name, loading: "lazy" })));
      }
      if (url && /^audio\//.test(type)) {
        return el("li", null, el("audio", { src: url, controls: true, preload: "none" }));
      }
      return el("li", null, url
        ? el("a", { href: url, rel: "noopener noreferrer", download: name }, name)
        : el("span", null, name));
    }));
  }

  function markRead() {
    var id = state.openId;
    if (!id || document.hidden) return;
    clearTimeout(state.readTimer);
    state.readTimer = setTimeout(function () {
      if (state.openId === id) api("POST", "/api/conversations/" + id + "/read").catch(function () {});
    }, 150);
  }

  // ---------------------------------------------------------------- agent assist (KB suggestions)

  function hideAssist() {
    state.assistSeq++;
    var box = $("assist");
    if (box) box.hidden = true;
  }

  /** Articles for the customer's latest question; the hub skips "a person, please" and
   *  feedback, so the suggestions stay on the topic after a handoff. */
  function suggestArticles() {
    var box = $("assist");
    if (!box || !state.openId) return;
    var id = state.openId;
    var seq = ++state.assistSeq;
    api("GET", "/api/conversations/" + id + "/suggestions?limit=3").then(function (result) {
      if (seq !== state.assistSeq || state.openId !== id) return;
      renderAssist((result && Array.isArray(result.items) ? result.items : []).slice(0, 3));
    }).catch(function () {
      if (seq === state.assistSeq) box.hidden = true;   // fail quietly
    });
  }

  function snippet(text, max) {
    text = String(text || "").replace(/\s+/g, " ").trim();
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function renderAssist(items) {
    var box = $("assist");
    var list = $("assist-list");
    clear(list);
    items.forEach(function (article) {
      if (!article) return;
      var answer = String(article.answer || "");
      list.appendChild(el("li", { class: "assist-item" }, [
        el("div", { class: "assist-main" }, [
          el("p", { class: "assist-item-title" }, String(article.title || "")),
          el("p", { class: "assist-snippet", title: answer }, snippet(answer, 140))
        ]),
        el("button", {
          type: "button", class: "btn btn-ghost assist-insert", disabled: !answer,
          "aria-label": t("assist.insert_label", { title: String(article.title || "") }),
          onclick: function () { insertIntoReply(answer); }
        }, t("assist.insert"))
      ]));
    });
    box.hidden = !list.children.length;
  }

  function insertIntoReply(text) {
    var box = $("reply-text");
    var current = box.value;
    box.value = current.trim() ? current.replace(/\s+$/, "") + "\n\n" + text : text;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    onComposerInput();
  }

  // ---------------------------------------------------------------- customer panel

  function loadCustomer(customerId, seq) {
    return api("GET", "/api/customers/" + customerId).then(function (profile) {
      if (seq !== state.openSeq) return;
      renderCustomer(profile);
    }).catch(function () {
      if (seq !== state.openSeq || !state.open) return;
      renderCustomer({ id: customerId, display_name: state.open.customer.display_name,
        guest_code: state.open.customer.guest_code,
        identities: state.open.customer.identities || [], conversations: [] });
    });
  }

  /** Whether the web visitor has a chat open (loaded with the ticket, then kept live). */
  function renderPresence(profile) {
    var line = $("cust-presence");
    var customer = state.open && state.open.customer;
    var web = (profile.identities || []).some(function (i) { return i.kind === "web"; });
    line.hidden = !customer || customer.id !== profile.id || !web || customer.online === undefined;
    if (line.hidden) return;
    line.dataset.online = String(Boolean(customer.online));
    // hub/follow_up.py copies a reply to a visitor who left to their e-mail, if any.
    var email = (profile.identities || []).some(function (i) { return i.kind === "email"; });
    line.textContent = t(customer.online ? "customer.online"
      : (email ? "customer.offline_email" : "customer.offline"));
  }

  function renderCustomer(profile) {
    var panel = $("customer-panel");
    panel.hidden = false;
    var avatar = $("cust-avatar");
    avatar.textContent = initials(personName(profile));
    avatar.dataset.hue = String(hue(profile.id));
    applyAvatarHues(panel);
    $("cust-name").textContent = personName(profile);
    state.profile = profile;
    renderPresence(profile);
    renderContext();
    var ids = $("cust-identities");
    clear(ids);
    (profile.identities || []).forEach(function (identity) {
      var verifiable = !identity.verified && (identity.kind === "email" || identity.kind === "phone");
      ids.appendChild(el("li", { "data-kind": identity.kind, "data-reachable": String(identity.reachable !== false) }, [
        el("span", { class: "badge kind-" + identity.kind }, has("kind." + identity.kind) ? t("kind." + identity.kind) : identity.kind),
        el("span", { class: "identity-value" }, identity.value),
        identity.verified ? el("span", { class: "verified", title: t("conv.verified"), "aria-label": t("conv.verified") }, "✓") : null,
        identity.reachable === false ? el("span", { class: "pill d-failed unreachable" }, t("customer.unreachable")) : null,
        verifiable ? el("button", {
          type: "button", class: "btn btn-ghost verify",
          "aria-label": t("customer.verify_label", { value: identity.value }),
          onclick: function () { verifyIdentity(profile.id, identity); }
        }, t("customer.verify")) : null
      ]));
    });
    $("identity-form").dataset.customerId = String(profile.id);
    loadSuggestions(profile.id);
    renderCustomerTickets(profile);
  }

  /** The customer's tickets, newest activity first; kept live by conversation.updated. */
  function renderCustomerTickets(profile) {
    var tickets = $("cust-tickets");
    clear(tickets);
    (profile.conversations || []).forEach(function (c) {
      var current = c.id === state.openId;
      tickets.appendChild(el("li", null, el("button", {
        type: "button", class: "ticket" + (current ? " current" : ""),
        "aria-current": current ? "true" : null,
        onclick: function () { if (!current) openConversation(c.id); }
      }, [
        el("span", { class: "row" }, [
          el("span", { class: "ticket-id" }, "#" + c.id),
          el("span", { class: "pill st-" + c.status }, t("inbox.status." + c.status)),
          timeEl(c.last_activity_at)
        ]),
        el("span", { class: "preview" }, (c.last_message && c.last_message.text) || "")
      ])));
    });
  }

  function updateCustomerTicket(summary) {
    var profile = state.profile;
    if (!profile || !summary.customer || summary.customer.id !== profile.id) return;
    var tickets = (profile.conversations || []).filter(function (c) { return c.id !== summary.id; });
    tickets.push(summary);
    tickets.sort(byActivity);
    profile.conversations = tickets;
    renderCustomerTickets(profile);
  }

  // Identities an agent adds or verifies, and customers who may be the same person.

  function customerChanged(profile) {
    if (!state.open || !state.open.customer || state.open.customer.id !== profile.id) return;
    renderCustomer(profile);
    refreshReplyChannels(state.openId);
  }

  function verifyIdentity(customerId, identity) {
    api("POST", "/api/customers/" + customerId + "/identities/verify",
      { kind: identity.kind, value: identity.value }).then(customerChanged)
      .catch(function (error) { toast(errorText(error)); });
  }

  function addIdentity(event) {
    event.preventDefault();
    var input = $("identity-input");
    var customerId = Number($("identity-form").dataset.customerId);
    var value = input.value.trim();
    if (!value || !customerId) return;
    api("POST", "/api/customers/" + customerId + "/identities", { kind: "email", value: value })
      .then(function (profile) {
        input.value = "";
        customerChanged(profile);
        if (profile.conflict) {
          toast(t("customer.conflict", { value: profile.conflict.value, name: profile.conflict.display_name }));
        }
      }).catch(function (error) { toast(errorText(error)); });
  }

  function loadSuggestions(customerId) {
    var seq = state.openSeq;
    api("GET", "/api/customers/" + customerId + "/suggestions").then(function (result) {
      if (seq !== state.openSeq) return;
      renderSuggestions(customerId, (result && result.items) || []);
    }).catch(function () { if (seq === state.openSeq) renderSuggestions(customerId, []); });
  }

  function suggestionText(s) {
    var name = String(s.display_name || "#" + s.id);
    if (s.reason === "same_identity") {
      var key = "customer.same_" + s.kind;
      var kind = has("kind." + s.kind) ? t("kind." + s.kind) : String(s.kind);
      return has(key) ? t(key, { name: name }) : t("customer.same_identity", { name: name, kind: kind });
    }
    return t("customer.similar_name", { name: name });
  }

  function renderSuggestions(customerId, items) {
    var list = $("suggestion-list");
    clear(list);
    $("cust-suggestions").hidden = !items.length;
    items.forEach(function (s) {
      var name = String(s.display_name || "#" + s.id);
      list.appendChild(el("li", { class: "suggestion", "data-reason": String(s.reason || "") }, [
        el("span", { class: "preview" }, suggestionText(s)),
        s.value ? el("span", { class: "identity-value" }, String(s.value)) : null,
        el("button", {
          type: "button", class: "btn merge", "aria-label": t("customer.merge_label", { name: name }),
          onclick: function (event) { mergeCustomer(customerId, s.id, event.currentTarget); }
        }, t("customer.merge"))
      ]));
    });
  }

  function mergeCustomer(customerId, otherId, button) {
    button.disabled = true;
    api("POST", "/api/customers/" + customerId + "/merge", { other_id: otherId }).then(function () {
      toast(t("customer.merged"));
      if (state.openId) openConversation(state.openId, true);
    }).catch(function (error) {
      button.disabled = false;
      toast(errorText(error));
    });
  }

  /** Replying on a channel where every identity of the customer is unreachable. */
  function unreachableWarning(channel) {
    var kinds = { line: "line", sms: "phone", phone: "phone", email: "email", web: "web" };
    var kind = kinds[channel];
    var ids = ((state.open && state.open.customer && state.open.customer.identities) || [])
      .filter(function (i) { return i.kind === kind; });
    if (!ids.length || ids.some(function (i) { return i.reachable !== false; })) return "";
    return t("conv.unreachable_warning", { channel: channelName(channel) });
  }

  /** The product and store the customer came from (QR code or widget), if any. */
  function renderContext() {
    var c = state.open || {};
    var product = c.product, store = c.store;
    $("cust-context").hidden = !product && !store;
    var productBox = $("ctx-product");
    clear(productBox);
    if (product && typeof product === "object") {
      var name = (LOCALE.slice(0, 2) !== "ja" && product.name_en) || product.name || product.sku;
      append(productBox, [name, " ", el("span", { class: "sku" }, product.sku),
        typeof product.price === "number" ? el("div", null, price(product)) : null]);
    } else if (product) append(productBox, String(product));
    else append(productBox, "—");
    $("ctx-store").textContent = !store ? "—" : typeof store === "object" ? String(store.name || store.id) : String(store);
  }

  function price(product) {
    try {
      return new Intl.NumberFormat(LOCALE, { style: "currency", currency: product.currency || "JPY" })
        .format(product.price);
    } catch (e) { return String(product.price); }
  }

  // ---------------------------------------------------------------- actions

  function patchConversation(changes) {
    var id = state.openId;
    if (!id) return Promise.resolve();
    return api("PATCH", "/api/conversations/" + id, changes).then(function (summary) {
      if (state.openId === id && state.open) {
        applySummary(summary);
      }
      upsertSummary(summary);
    }).catch(function (error) { toast(errorText(error)); });
  }

  /** An inbox summary of the open ticket (after a PATCH or a live update) over its detail,
   *  keeping what only the detail has: the customer's identities, the product and store
   *  objects, the reply channels, the assignee's name. */
  function applySummary(summary) {
    var keep = { customer: state.open.customer, reply_channels: state.open.reply_channels,
      product: state.open.product, store: state.open.store };
    Object.assign(state.open, summary, keep, { assignee: assigneeFor(summary) });
    renderHeader();
  }

  function assigneeFor(summary) {
    var id = summary.assignee_id;
    if (id === ME) return { id: ME, name: t("conv.you") };
    if (!id) return null;
    return { id: id, name: state.agentNames[id] || "#" + id };
  }

  /** Agents' names as the hub tells them (a ticket's assignee, an assignment note). */
  function learnAgentName(id, name) {
    if (!id || !name || state.agentNames[id] === name) return;
    state.agentNames[id] = name;
    if (state.open && state.open.assignee && state.open.assignee.id === id) {
      state.open.assignee = assigneeFor({ assignee_id: id });
      renderHeader();
    }
  }

  function saveTags(tags) {
    var seen = new Set();
    tags = tags.map(function (x) { return x.trim(); }).filter(function (x) {
      if (!x || seen.has(x.toLowerCase())) return false;
      seen.add(x.toLowerCase());
      return true;
    });
    return patchConversation({ tags: tags });
  }

  function onAction(event) {
    var button = event.target.closest("[data-action]");
    if (!button || !state.open) return;
    var action = button.dataset.action;
    button.disabled = true;
    var changes = {
      "assign-me": { assignee_id: ME },
      "unassign": { assignee_id: null },
      "pending": { status: "pending" },
      "resolve": { status: "resolved" },
      "reopen": { status: "open" }
    }[action];
    patchConversation(changes).then(function () { button.disabled = false; });
  }

  function sendReply(event) {
    event.preventDefault();
    if (!state.openId) return;
    var box = $("reply-text");
    var text = box.value.trim();
    if (!text) { box.focus(); return; }
    var note = state.mode === "note";
    var body = { text: text, internal: note };
    if (!note && $("reply-channel").value) body.channel = $("reply-channel").value;
    var id = state.openId;
    var button = $("send");
    button.disabled = true;
    showComposerError("");
    stopTyping();
    api("POST", "/api/conversations/" + id + "/messages", body).then(function (item) {
      if (state.openId === id) {
        if (box.value.trim() === text) box.value = "";
        delete state.drafts[id];
        item.conversation_id = id;
        appendItem(item, true);
        scrollTimeline(true);
      }
    }).catch(function (error) {
      showComposerError(errorText(error));
    }).then(function () {
      button.disabled = false;
      updateComposer();
      box.focus();
    });
  }

  // ---------------------------------------------------------------- typing (agent → customer)

  function onComposerInput() {
    if (state.mode !== "reply" || !state.openId || !socket || !socket.connected) return;
    var now = Date.now();
    if (now - state.typingSentAt > 2500) {
      state.typingSentAt = now;
      socket.emit("typing", { conversation_id: state.openId, typing: true });
    }
    clearTimeout(state.typingStopTimer);
    state.typingStopTimer = setTimeout(stopTyping, 3000);
  }

  function stopTyping() {
    clearTimeout(state.typingStopTimer);
    if (state.typingSentAt && state.openId && socket && socket.connected) {
      socket.emit("typing", { conversation_id: state.openId, typing: false });
    }
    state.typingSentAt = 0;
  }

  // ---------------------------------------------------------------- realtime

  var socket = null;

  function setConn(stateName) {
    var badge = $("conn");
    if (!badge) return;
    badge.dataset.state = stateName;
    badge.textContent = t("conn." + stateName);
  }

  function connect() {
    if (typeof window.io !== "function") {
      setConn("offline");
      return;
    }
    socket = window.io("/agent", {
      auth: { token: SOCKET_TOKEN },
      transports: ["websocket", "polling"]
    });
    socket.on("connect", function () {
      setConn("online");
      if (state.connectedOnce) refresh();   // we may have missed events: reload from the API
      state.connectedOnce = true;
    });
    socket.on("disconnect", function () { setConn("offline"); });
    socket.io.on("reconnect_attempt", function () { setConn("connecting"); });
    socket.on("connect_error", function (error) {
      setConn("offline");
      var code = error && error.data && error.data.code;
      if (code === "unauthorized" || /\bunauthorized\b/.test(String((error && error.message) || ""))) {
        toast(t("conn.expired"));
      } else if (!socket.active) {
        setTimeout(function () { socket.connect(); }, 5000);
      }
    });
    socket.on("conversation.updated", function (summary) {
      if (!summary || typeof summary.id !== "number") return;
      upsertSummary(summary);
      updateCustomerTicket(summary);
      if (summary.id === state.openId && state.open) {
        applySummary(summary);
        if (summary.unread_count > 0) markRead();
        // A channel we had not seen may have become reachable: refresh the picker.
        if ((summary.channels || []).some(function (ch) { return (state.open.reply_channels || []).indexOf(ch) < 0; })) {
          refreshReplyChannels(summary.id);
        }
      }
    });
    socket.on("conversation.deleted", function (data) {
      // The customer was erased (a deletion request): the ticket is gone for everyone.
      if (!data || typeof data.id !== "number") return;
      state.list = state.list.filter(function (c) { return c.id !== data.id; });
      if (data.id === state.openId) {
        closeConversation();
        toast(t("inbox.erased"));
      } else {
        renderList();
      }
    });
    socket.on("message.created", function (item) {
      if (item && item.data && item.data.event === "assigned") {
        learnAgentName(item.data.assignee_id, item.data.assignee_name);
      }
      if (!item || item.conversation_id !== state.openId) return;
      appendItem(item, true);
      if (item.type === "system" && item.data && item.data.event === "identity_given" && state.open) {
        loadCustomer(state.open.customer.id, state.openSeq);  // a new address: panel and picker
        refreshReplyChannels(item.conversation_id);
      }
      if (item.sender_type === "customer") {
        $("typing").hidden = true;
        if (item.text && !item.internal) suggestArticles();
        markRead();
      }
    });
    socket.on("message.updated", function (item) {
      if (!item || item.conversation_id !== state.openId || !state.itemIds.has(item.id)) return;
      replaceItem(item);
    });
    socket.on("customer.presence", function (data) {
      var customer = state.open && state.open.customer;
      if (!data || !customer || customer.id !== data.customer_id) return;
      customer.online = Boolean(data.online);
      if (state.profile) renderPresence(state.profile);
    });
    socket.on("typing", function (data) {
      if (!data || data.conversation_id !== state.openId || data.sender_type !== "customer") return;
      var box = $("typing");
      box.hidden = !data.typing;
      clearTimeout(state.typingTimer);
      if (data.typing) state.typingTimer = setTimeout(function () { box.hidden = true; }, 8000);
    });
  }

  function refreshReplyChannels(id) {
    api("GET", "/api/conversations/" + id).then(function (detail) {
      if (state.openId !== id || !state.open) return;
      state.open.reply_channels = detail.reply_channels;
      state.open.customer = detail.customer;
      renderReplyChannels();
    }).catch(function () {});
  }

  function refresh() {
    loadList();
    if (state.openId) openConversation(state.openId, true);
  }

  // ---------------------------------------------------------------- wiring

  function readFiltersFromHash() {
    var match = /^#c(\d+)$/.exec(window.location.hash);
    return match ? Number(match[1]) : null;
  }

  var searchTimer = null;

  function wire() {
    $("f-status").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-status]");
      if (!button) return;
      state.filters.status = button.dataset.status;
      $("f-status").querySelectorAll("button").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === button));
      });
      loadList();
    });
    $("f-assignee").addEventListener("change", function (event) {
      state.filters.assignee = event.target.value;
      loadList();
    });
    $("f-channel").addEventListener("change", function (event) {
      state.filters.channel = event.target.value;
      loadList();
    });
    $("f-q").addEventListener("input", function (event) {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(function () {
        state.filters.q = event.target.value.trim();
        loadList();
      }, 250);
    });
    $("filters").addEventListener("submit", function (event) {
      event.preventDefault();
      clearTimeout(searchTimer);
      state.filters.q = $("f-q").value.trim();
      loadList();
    });
    $("load-more").addEventListener("click", loadMore);
    $("back").addEventListener("click", closeConversation);
    document.querySelector(".conv-actions").addEventListener("click", onAction);
    $("tag-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("tag-input");
      var tag = input.value.trim();
      if (!tag || !state.open) return;
      input.value = "";
      saveTags((state.open.tags || []).concat([tag]));
    });
    $("composer").addEventListener("submit", sendReply);
    $("reply-channel").addEventListener("change", updateComposer);
    $("video-start").addEventListener("click", startVideo);
    $("video-copy").addEventListener("click", copyVideoLink);
    $("video-close").addEventListener("click", function () { $("video-share").hidden = true; });
    $("identity-form").addEventListener("submit", addIdentity);
    $("composer").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-mode]");
      if (!button) return;
      state.mode = button.dataset.mode;
      if (state.mode === "note") stopTyping();
      updateComposer();
      $("reply-text").focus();
    });
    $("reply-text").addEventListener("input", onComposerInput);
    $("reply-text").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        $("composer").requestSubmit();
      }
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) markRead();
    });
    window.addEventListener("hashchange", function () {
      var id = readFiltersFromHash();
      if (id && id !== state.openId) openConversation(id, true);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && state.openId && root.classList.contains("has-open") &&
          window.matchMedia("(max-width: 760px)").matches) closeConversation();
    });
  }

  // Avatars in the list get their hue after each render.
  var listObserver = new MutationObserver(function () { applyAvatarHues($("conv-list")); });
  listObserver.observe($("conv-list"), { childList: true });

  wire();
  keepTimelineAtEnd();
  updateComposer();
  loadList();
  var initial = readFiltersFromHash();
  if (initial) openConversation(initial, true);
  connect();
})();
