/* omohub knowledge-base editor (supervisors): list, edit, preview, publish, history, try.
 *
 * A new article is created (POST, refused with 409 when the id exists) as a draft the bot
 * does not use until "Publish"; an opened article is saved in place (PUT).
 *
 * Same rules as app.js: server strings reach the DOM only through textContent /
 * createTextNode (never innerHTML); every non-GET request sends X-CSRF-Token.
 */
(function () {
  "use strict";

  var root = document.getElementById("kb");
  if (!root) return;

  var dom = window.omohubDom;
  var readJSON = dom.readJSON, meta = dom.meta, $ = dom.byId, clear = dom.clear, el = dom.el;
  var MESSAGES = readJSON("i18n");
  var t = dom.translator(MESSAGES);
  var CSRF = meta("csrf-token");
  var ID_RE = /^[A-Za-z0-9-]+$/;
  var current = null;   // the article loaded in the editor (detail JSON) or null for a new one
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

  /** fetch JSON; rejects with an Error whose message is the API's error message, with the
   * HTTP status and the error's code as .status and .code. */
  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin" };
    if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/login");
        throw new Error(t("error.generic"));
      }
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var err = data && data.error;
          var message = err && (err.message || err.code) ? String(err.message || err.code)
            : (data && data.detail ? String(data.detail) : "HTTP " + response.status);
          var error = new Error(message);
          error.status = response.status;
          error.code = err && err.code ? String(err.code) : null;
          throw error;
        }
        return data || {};
      });
    });
  }

  function fail(error) {
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
          el("span", { "class": "kb-ver" }, t("kb.version", { n: item.version }))
        ])
      ]);
      button.addEventListener("click", function () { openArticle(item.id); });
      list.appendChild(el("li", { "data-id": item.id }, button));
    });
  }

  // ---------------------------------------------------------------- editor

  function fillForm(article) {
    current = article;
    $("kb-id").value = article ? article.id : "";
    $("kb-id").readOnly = !!article;
    $("kb-id").removeAttribute("aria-invalid");
    $("kb-locale").value = article && article.locale === "en" ? "en" : (article ? "ja" : defaultLocale());
    if (article && (article.locale === "ja" || article.locale === "en")) {
      $("kb-try-locale").value = article.locale;
    }
    $("kb-title").value = article ? article.title || "" : "";
    $("kb-questions").value = article ? (article.questions || []).join("\n") : "";
    $("kb-products").value = article ? (article.products || []).join(", ") : "";
    $("kb-tags").value = article ? (article.tags || []).join(", ") : "";
    $("kb-body").value = article ? article.body || "" : "";
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
    // a published article's save changes what the bot answers at once; say so on the button
    $("kb-save").textContent = t(current && current.published ? "kb.save_live" : "kb.save_draft");
    if (!current) {
      publish.hidden = true;
      return;
    }
    box.appendChild(badge(current.published));
    box.appendChild(el("span", { "class": "kb-ver" }, t("kb.version", { n: current.version })));
    publish.hidden = false;
    publish.textContent = t(current.published ? "kb.unpublish" : "kb.publish");
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

  function save(event) {
    event.preventDefault();
    var id = $("kb-id").value.trim();
    var title = $("kb-title").value.trim();
    var body = $("kb-body").value;
    if (!id || !title || !body.trim()) { setStatus(t("kb.required"), true); return; }
    if (!ID_RE.test(id)) { setStatus(t("kb.bad_id"), true); return; }
    var payload = {
      title: title, body: body, locale: $("kb-locale").value,
      questions: splitList($("kb-questions").value, /\r?\n/),
      products: splitList($("kb-products").value, /[,、，]/),
      tags: splitList($("kb-tags").value, /[,、，]/)
    };
    var creating = !current;
    var request;
    if (creating) {
      payload.id = id;
      request = api("POST", "/api/kb/articles", payload);
    } else {
      request = api("PUT", "/api/kb/articles/" + encodeURIComponent(current.id), payload);
    }
    var button = $("kb-save");
    button.disabled = true;
    request.then(function (data) {
      fillForm(data);
      setStatus(t(data.published ? "kb.saved_live" : "kb.saved_draft", { n: data.version }));
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

  function togglePublish() {
    if (!current) return;
    var id = current.id;
    var action = current.published ? "unpublish" : "publish";
    var button = $("kb-publish");
    button.disabled = true;
    api("POST", "/api/kb/articles/" + encodeURIComponent(id) + "/" + action).then(function () {
      return api("GET", "/api/kb/articles/" + encodeURIComponent(id));
    }).then(function (data) {
      fillForm(data);
      setStatus(t(action === "publish" ? "kb.published_ok" : "kb.unpublished_ok"));
      return loadList();
    }).catch(fail).then(function () { button.disabled = false; });
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
        "data-live": v.live ? "true" : null
      }, [
        el("span", { "class": "kb-ver" }, t("kb.version", { n: v.version })),
        v.live ? el("span", { "class": "badge kb-badge kb-pub kb-live" }, t("kb.live")) : null,
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
    $("kb-restore").hidden = !current || v.version === current.version;
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
        setStatus(t("kb.restored", { n: restored, m: data.version }));
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
  $("kb-publish").addEventListener("click", togglePublish);
  $("kb-new").addEventListener("click", function () { fillForm(null); setStatus(""); $("kb-id").focus(); });
  $("kb-id").addEventListener("input", function () { $("kb-id").removeAttribute("aria-invalid"); });
  $("kb-filter").addEventListener("change", loadList);
  $("kb-version-close").addEventListener("click", hideVersion);
  $("kb-restore").addEventListener("click", restoreVersion);
  $("kb-try").addEventListener("submit", tryQuestion);

  fillForm(null);
  loadList();
})();
