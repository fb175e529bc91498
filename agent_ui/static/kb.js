/* omohub knowledge-base editor (supervisors): list, edit, preview, publish, history, try.
 *
 * A new article is created (POST, refused with 409 when the id exists) as a draft the bot
 * does not use until "Publish"; an opened article is saved in place (PUT). Saving a
 * published article keeps the edit as a pending draft: the bot answers with the live text
 * (shown above the form) until "Publish changes"; "Discard draft" drops the edit.
 *
 * Same rules as app.js: server strings reach the DOM only through textContent /
 * createTextNode (never innerHTML); every non-GET request sends X-CSRF-Token.
 */
(function () {
  "use strict";

  var root = document.getElementById("kb");
  if (!root) return;

  var dom = window.omohubDom;
  var readJSON = dom.readJSON, $ = dom.byId, clear = dom.clear, el = dom.el;
  var MESSAGES = readJSON("i18n");
  var t = dom.translator(MESSAGES);
  var ID_RE = /^[A-Za-z0-9-]+$/;
  var current = null;   // the article loaded in the editor (detail JSON) or null for a new one
  // (its own fields are its live text; current.draft, when set, is the pending edit the form shows)
  var shownVersion = null; // the history entry open in the read-only viewer
  var listSeq = 0;
  var trySeq = 0;

  // ---------------------------------------------------------------- helpers

  function has(key) { return Object.prototype.hasOwnProperty.call(MESSAGES, key); }

  function setStatus(text, isError) {
    var node = $("kb-status");
    node.textContent = text || "";
    node.classList.toggle("error", !!isError);
  }

  /** dom.api (X-CSRF-Token, 401 → /login, errors with the API's message as .message and
   * .status / .code); a response without a JSON body reads as {} here. */
  function api(method, url, body) {
    return dom.api(method, url, body).then(function (data) { return data || {}; });
  }

  function fail(error) {
    if (error && error.code === "edit_conflict") {
      // someone saved this article after it was opened here: nothing was saved, and the
      // form keeps this editor's text so it can be copied before reloading
      var newest = error.body && error.body.error ? error.body.error.newest_version : "?";
      setStatus(t("kb.edit_conflict", { n: newest }), true);
      return;
    }
    setStatus(t("error.prefix") + (error && error.message ? error.message : t("error.generic")), true);
  }

  function firstParagraph(body) {
    var blocks = String(body || "").trim().split("\n\n");
    for (var i = 0; i < blocks.length; i++) {
      var text = blocks[i].split("\n").map(function (line) { return line.trim(); })
        .filter(Boolean).join(" ");
      if (text) return text;
    }
    return "";
  }

  function splitList(value, sep) {
    return String(value || "").split(sep).map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function badge(published) {
    return el("span", { "class": "badge kb-badge " + (published ? "kb-pub" : "kb-draft") },
      t(published ? "kb.published" : "kb.draft"));
  }

  function pendingBadge(version) {
    return el("span", { "class": "badge kb-badge kb-draft kb-pending" },
      t("kb.pending", { n: version }));
  }

  /** what the form edits: the pending draft of a published article, else the article */
  function working() { return current ? current.draft || current : null; }

  function pct(value) {
    var n = Number(value);
    return isFinite(n) ? Math.round(n * 100) + "%" : "—";
  }

  // ---------------------------------------------------------------- list

  function loadList() {
    var locale = $("kb-filter").value;
    var mine = ++listSeq;
    var url = "/api/kb/articles" + (locale ? "?locale=" + encodeURIComponent(locale) : "");
    return api("GET", url).then(function (data) {
      if (mine === listSeq) renderList(data.items || []);
    }).catch(fail);
  }

  function renderList(items) {
    var list = $("kb-list");
    clear(list);
    if (!items.length) {
      list.appendChild(el("li", { "class": "kb-empty" }, t("kb.empty")));
      return;
    }
    items.forEach(function (item) {
      var selected = current && current.id === item.id;
      var button = el("button", {
        type: "button", "class": "kb-item", "data-id": item.id,
        "aria-current": selected ? "true" : null
      }, [
        el("span", { "class": "kb-item-title" }, item.title || item.id),
        el("span", { "class": "kb-item-meta" }, [
          el("code", { "class": "kb-item-id" }, item.id),
          el("span", { "class": "badge" }, item.locale),
          badge(item.published),
          el("span", { "class": "kb-ver" }, t("kb.version", { n: item.version })),
          item.has_draft ? pendingBadge(item.draft_version) : null
        ])
      ]);
      button.addEventListener("click", function () { openArticle(item.id); });
      list.appendChild(el("li", { "data-id": item.id }, button));
    });
  }

  // ---------------------------------------------------------------- editor

  function fillForm(article) {
    current = article;
    var text = working();
    $("kb-id").value = article ? article.id : "";
    $("kb-id").readOnly = !!article;
    $("kb-id").removeAttribute("aria-invalid");
    $("kb-locale").value = text && text.locale === "en" ? "en" : (text ? "ja" : defaultLocale());
    if (text && (text.locale === "ja" || text.locale === "en")) {
      $("kb-try-locale").value = text.locale;
    }
    $("kb-title").value = text ? text.title || "" : "";
    $("kb-questions").value = text ? (text.questions || []).join("\n") : "";
    $("kb-products").value = text ? (text.products || []).join(", ") : "";
    $("kb-tags").value = text ? (text.tags || []).join(", ") : "";
    $("kb-body").value = text ? text.body || "" : "";
    updatePreview();
    renderCurrent();
    renderHistory(article ? article.versions || [] : []);
    hideVersion();
    Array.prototype.forEach.call(document.querySelectorAll(".kb-item"), function (node) {
      if (article && node.getAttribute("data-id") === article.id) node.setAttribute("aria-current", "true");
      else node.removeAttribute("aria-current");
    });
  }

  function defaultLocale() {
    var filter = $("kb-filter").value;
    if (filter) return filter;
    return root.dataset.locale === "en" ? "en" : "ja";
  }

  function renderCurrent() {
    var box = $("kb-current");
    clear(box);
    var publish = $("kb-publish");
    var published = !!(current && current.published);
    var draft = current ? current.draft : null;
    // a published article's save is a draft the bot does not use yet; say so on the button
    $("kb-save").textContent = published ? t("kb.save_pending") : t("kb.save_draft");
    // "Publish" an unpublished article; "Publish changes" of a published one's draft
    publish.hidden = !current || (published && !draft);
    publish.textContent = published ? t("kb.publish_changes") : t("kb.publish");
    $("kb-discard").hidden = !draft;
    $("kb-unpublish").hidden = !published;
    renderState();
    if (!current) return;
    box.appendChild(badge(current.published));
    box.appendChild(el("span", { "class": "kb-ver" }, t("kb.version", { n: current.version })));
    if (draft) box.appendChild(pendingBadge(draft.version));
  }

  /** above the form: which text is live, and whether an edit of it is pending */
  function renderState() {
    var state = $("kb-state");
    var draft = current ? current.draft : null;
    state.hidden = !current;
    $("kb-live").hidden = !draft;
    if (!current) return;
    state.setAttribute("data-state", draft ? "pending" : (current.published ? "live" : "unpublished"));
    if (draft) {
      $("kb-state-head").textContent = t("kb.state.pending_head", { n: draft.version });
      $("kb-state-note").textContent = t("kb.state.pending", { live: current.version });
      $("kb-live-title").textContent = current.title || "";
      $("kb-live-body").textContent = current.body || "";
    } else if (current.published) {
      $("kb-state-head").textContent = t("kb.state.live_head", { n: current.version });
      $("kb-state-note").textContent = t("kb.state.live");
    } else {
      $("kb-state-head").textContent = t("kb.state.unpublished_head");
      $("kb-state-note").textContent = t("kb.state.unpublished");
    }
  }

  function updatePreview() {
    var text = firstParagraph($("kb-body").value);
    var node = $("kb-preview");
    node.textContent = text || t("kb.preview_empty");
    node.classList.toggle("empty", !text);
  }

  function openArticle(id) {
    setStatus(t("kb.loading"));
    return api("GET", "/api/kb/articles/" + encodeURIComponent(id)).then(function (data) {
      fillForm(data);
      setStatus("");
    }).catch(fail);
  }

  /** the form as an article to save, or null (with the reason shown) when it is incomplete */
  function formPayload() {
    var id = $("kb-id").value.trim();
    var title = $("kb-title").value.trim();
    var body = $("kb-body").value;
    if (!id || !title || !body.trim()) { setStatus(t("kb.required"), true); return null; }
    if (!ID_RE.test(id)) { setStatus(t("kb.bad_id"), true); return null; }
    return {
      id: id, title: title, body: body, locale: $("kb-locale").value,
      questions: splitList($("kb-questions").value, /\r?\n/),
      products: splitList($("kb-products").value, /[,、，]/),
      tags: splitList($("kb-tags").value, /[,、，]/)
    };
  }

  /** whether the form holds edits not saved yet */
  function edited(payload) {
    var text = working();
    if (!text) return true;
    function same(a, b) { return JSON.stringify(a || []) === JSON.stringify(b || []); }
    return payload.title !== (text.title || "").trim() || payload.body !== (text.body || "") ||
      payload.locale !== text.locale || !same(payload.questions, text.questions) ||
      !same(payload.products, text.products) || !same(payload.tags, text.tags);
  }

  function putArticle(payload) {
    var body = {};
    Object.keys(payload).forEach(function (key) { if (key !== "id") body[key] = payload[key]; });
    // the version this form was loaded from: the hub refuses the save if a newer one exists
    body.base_version = current.draft ? current.draft.version : current.version;
    return api("PUT", "/api/kb/articles/" + encodeURIComponent(current.id), body);
  }

  function savedStatus(data, before) {
    if (data.draft) {
      if (before && before.draft && before.draft.version === data.draft.version) return t("kb.unchanged");
      return t("kb.saved_pending", { n: data.draft.version, live: data.version });
    }
    if (data.published) return t("kb.unchanged");  // published, no draft: nothing was saved
    return t("kb.saved_draft", { n: data.version });
  }

  function save(event) {
    event.preventDefault();
    var payload = formPayload();
    if (!payload) return;
    var id = payload.id;
    var creating = !current;
    var before = current;
    var request = creating ? api("POST", "/api/kb/articles", payload) : putArticle(payload);
    var button = $("kb-save");
    button.disabled = true;
    request.then(function (data) {
      fillForm(data);
      setStatus(savedStatus(data, before));
      return loadList();
    }).catch(function (error) {
      if (creating && error && error.status === 409) {
        // the id is taken: nothing was saved; keep the form so another id can be chosen
        var field = $("kb-id");
        field.setAttribute("aria-invalid", "true");
        field.focus();
        setStatus(t("kb.id_taken", { id: id }), true);
        return;
      }
      fail(error);
    }).then(function () { button.disabled = false; });
  }

  /** publish, unpublish or discard (``action``), then reload the article; ``done`` says how it went */
  function change(action, button, first, done) {
    if (!current) return;
    var id = current.id;
    button.disabled = true;
    Promise.resolve(first ? first() : null).then(function () {
      return api("POST", "/api/kb/articles/" + encodeURIComponent(id) + "/" + action);
    }).then(function () {
      return api("GET", "/api/kb/articles/" + encodeURIComponent(id));
    }).then(function (data) {
      fillForm(data);
      setStatus(done(data));
      return loadList();
    }).catch(fail).then(function () { button.disabled = false; });
  }

  function publish() {
    if (!current) return;
    var payload = formPayload();
    if (!payload) return;
    var changes = !!current.draft;
    // what the form shows is what goes live: unsaved edits are saved first
    var first = edited(payload) ? function () {
      changes = changes || current.published;
      return putArticle(payload);
    } : null;
    change("publish", $("kb-publish"), first, function (data) {
      return changes ? t("kb.published_changes", { n: data.version }) : t("kb.published_ok");
    });
  }

  function discard() {
    // the form's unsaved edits go too; the draft itself stays in the history (restorable)
    change("discard", $("kb-discard"), null, function (data) {
      return t("kb.discarded", { n: data.version });
    });
  }

  function unpublish() {
    change("unpublish", $("kb-unpublish"), null, function () { return t("kb.unpublished_ok"); });
  }

  // ---------------------------------------------------------------- history

  function renderHistory(versions) {
    var list = $("kb-history");
    clear(list);
    if (!versions.length) {
      list.appendChild(el("li", { "class": "kb-empty" }, t("kb.history_empty")));
      return;
    }
    versions.forEach(function (v) {
      var when = v.created_at ? new Date(v.created_at) : null;
      // only the version the bot answers from now is marked, and only while published
      var button = el("button", {
        type: "button", "class": "kb-hist-item", "data-version": v.version,
        "data-live": v.live ? "true" : null, "data-pending": v.pending ? "true" : null
      }, [
        el("span", { "class": "kb-ver" }, t("kb.version", { n: v.version })),
        v.live ? el("span", { "class": "badge kb-badge kb-pub kb-live" }, t("kb.live")) : null,
        v.pending ? el("span", { "class": "badge kb-badge kb-draft kb-pending" }, t("kb.pending_badge")) : null,
        el("span", { "class": "kb-hist-title" }, v.title || ""),
        when && !isNaN(when.getTime())
          ? el("time", { "class": "kb-hist-when", datetime: v.created_at }, when.toLocaleString(root.dataset.locale || undefined))
          : null
      ]);
      button.addEventListener("click", function () { showVersion(v); });
      list.appendChild(el("li", null, button));
    });
  }

  function showVersion(v) {
    shownVersion = v.version;
    $("kb-restore").hidden = !current || v.version === working().version;
    $("kb-version-label").textContent = t("kb.version_view", { n: v.version });
    $("kb-version-title").textContent = v.title || "";
    $("kb-version-body").textContent = v.body || "";
    $("kb-version").hidden = false;
  }

  function hideVersion() { $("kb-version").hidden = true; }

  function restoreVersion() {
    if (!current || shownVersion === null) return;
    var id = current.id;
    var restored = shownVersion;
    var button = $("kb-restore");
    button.disabled = true;
    api("POST", "/api/kb/articles/" + encodeURIComponent(id) + "/restore", { version: restored })
      .then(function (data) {
        fillForm(data);
        hideVersion();
        setStatus(data.draft ? t("kb.restored_draft", { n: restored, m: data.draft.version })
          : t("kb.restored", { n: restored, m: data.version }));
        return loadList();
      }).catch(fail).then(function () { button.disabled = false; });
  }

  // ---------------------------------------------------------------- try a question

  function tryQuestion(event) {
    event.preventDefault();
    var q = $("kb-try-q").value.trim();
    if (!q) return;
    var params = new URLSearchParams({ q: q });
    params.set("locale", $("kb-try-locale").value);
    var mine = ++trySeq;
    var box = $("kb-decision");
    box.classList.remove("answer", "handoff");
    box.textContent = t("kb.loading");
    clear($("kb-hits"));
    api("GET", "/api/kb/search?" + params.toString()).then(function (data) {
      if (mine === trySeq) renderHits(data);
    }).catch(function (error) {
      if (mine === trySeq) box.textContent = "";
      fail(error);
    });
  }

  function renderHits(data) {
    var hits = $("kb-hits");
    clear(hits);
    var decision = data.decision || {};
    var box = $("kb-decision");
    box.classList.toggle("answer", !!decision.answer);
    box.classList.toggle("handoff", !decision.answer);
    if (decision.answer) {
      box.textContent = t("kb.would_answer", { id: decision.answer }) + " (" +
        t("kb.confidence", { c: pct(decision.confidence) }) + ")";
    } else {
      var reasonKey = "handoff.reason." + (decision.reason || "");
      var reason = has(reasonKey) ? t(reasonKey) : String(decision.reason || "—");
      box.textContent = t("kb.would_handoff", { reason: reason });
    }
    if (decision.threshold !== undefined && decision.threshold !== null) {
      box.appendChild(el("span", { "class": "kb-threshold" }, " · " + t("kb.threshold", { t: pct(decision.threshold) })));
    }
    var items = data.items || [];
    if (!items.length) {
      hits.appendChild(el("li", { "class": "kb-empty" }, t("kb.no_hits")));
      return;
    }
    items.forEach(function (hit) {
      var open = el("button", { type: "button", "class": "kb-hit-open" }, hit.id);
      open.addEventListener("click", function () { openArticle(hit.id); });
      hits.appendChild(el("li", { "class": "kb-hit", "data-id": hit.id }, [
        el("div", { "class": "kb-hit-head" }, [
          open,
          el("span", { "class": "kb-hit-title" }, hit.title || ""),
          el("span", { "class": "badge kb-conf" }, t("kb.confidence", { c: pct(hit.confidence) }))
        ]),
        el("p", { "class": "kb-hit-answer" }, hit.answer || "")
      ]));
    });
  }

  // ---------------------------------------------------------------- wiring

  $("kb-form").addEventListener("submit", save);
  $("kb-body").addEventListener("input", updatePreview);
  $("kb-publish").addEventListener("click", publish);
  $("kb-discard").addEventListener("click", discard);
  $("kb-unpublish").addEventListener("click", unpublish);
  $("kb-new").addEventListener("click", function () { fillForm(null); setStatus(""); $("kb-id").focus(); });
  $("kb-id").addEventListener("input", function () { $("kb-id").removeAttribute("aria-invalid"); });
  $("kb-filter").addEventListener("change", loadList);
  $("kb-version-close").addEventListener("click", hideVersion);
  $("kb-restore").addEventListener("click", restoreVersion);
  $("kb-try").addEventListener("submit", tryQuestion);

  fillForm(null);
  loadList();
})();
