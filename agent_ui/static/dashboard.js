/* omohub supervisor dashboard: figure cards and inline-SVG charts, no library.
 *
 * Same rules as app.js: server strings reach the DOM only through textContent /
 * createTextNode; charts are SVG elements built with createElementNS (no innerHTML).
 */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) return;

  var SVG = "http://www.w3.org/2000/svg";
  var LOCALE = root.dataset.locale || document.documentElement.lang || "ja";
  var dom = window.omohubDom;
  var readJSON = dom.readJSON, $ = dom.byId, clear = dom.clear, el = dom.el;
  var MESSAGES = readJSON("i18n");
  var t = dom.translator(MESSAGES);
  var seq = 0;

  // ---------------------------------------------------------------- helpers

  function has(key) { return Object.prototype.hasOwnProperty.call(MESSAGES, key); }

  /** An SVG element; text is set with textContent only. */
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined) return;
      node.setAttribute(key, String(value));
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  var numberFmt = new Intl.NumberFormat(LOCALE);
  function num(n) {
    var value = Number(n);
    return isFinite(value) ? numberFmt.format(value) : "—";
  }

  function seconds(value) {
    if (value === null || value === undefined || !isFinite(Number(value))) return "—";
    var n = Math.round(Number(value));
    if (n < 60) return t("dashboard.seconds", { n: n });
    if (n < 3600) return t("dashboard.minutes", { m: Math.floor(n / 60), s: n % 60 });
    return t("dashboard.hours", { h: Math.floor(n / 3600), m: Math.floor((n % 3600) / 60) });
  }

  function isoDay(date) {
    return date.getFullYear() + "-" + String(date.getMonth() + 1).padStart(2, "0") + "-" +
      String(date.getDate()).padStart(2, "0");
  }

  var dayFmt = new Intl.DateTimeFormat(LOCALE, { month: "numeric", day: "numeric", timeZone: "UTC" });
  function shortDay(day) {
    var date = new Date(String(day) + "T00:00:00Z");
    return isNaN(date.getTime()) ? String(day) : dayFmt.format(date);
  }

  function channelName(channel) {
    return has("channel." + channel) ? t("channel." + channel) : String(channel);
  }

  function cssToken(value) { return String(value).replace(/[^\w-]/g, ""); }

  function setStatus(message, isError) {
    var box = $("dash-status");
    box.textContent = message || "";
    box.classList.toggle("error", Boolean(isError));
  }

  // ---------------------------------------------------------------- data

  function load() {
    var from = $("dash-from").value, to = $("dash-to").value;
    if (from && to && from > to) {
      setStatus(t("dashboard.bad_range"), true);
      return;
    }
    var params = new URLSearchParams();
    if (from) params.set("from", from);
    if (to) params.set("to", to);
    var mine = ++seq;
    setStatus(t("dashboard.loading"));
    root.setAttribute("aria-busy", "true");
    dom.api("GET", "/api/metrics?" + params.toString()).then(function (data) {
      if (data === null) throw new Error("no figures");  // no body, or not JSON
      if (mine !== seq) return;
      render(data || {});
      setStatus("");
    }).catch(function () {
      if (mine === seq) setStatus(t("dashboard.error"), true);
    }).then(function () {
      if (mine === seq) root.setAttribute("aria-busy", "false");
    });
  }

  // ---------------------------------------------------------------- rendering

  function render(data) {
    var conv = data.conversations || {};
    var frt = data.first_response_seconds || {};
    var cards = $("dash-cards");
    clear(cards);
    [
      [t("dashboard.opened"), num(conv.opened), null],
      [t("dashboard.resolved"), num(conv.resolved), null],
      [t("dashboard.open_now"), num(conv.open_now), null],
      [t("dashboard.first_response_median"), seconds(frt.median),
        t("dashboard.first_response_count", { n: num(frt.count || 0) })],
      [t("dashboard.first_response_p90"), seconds(frt.p90), null]
    ].forEach(function (card) {
      cards.appendChild(el("div", { class: "figure" }, [
        el("p", { class: "figure-label" }, card[0]),
        el("p", { class: "figure-value" }, card[1]),
        card[2] ? el("p", { class: "figure-note" }, card[2]) : null
      ]));
    });

    var days = Array.isArray(data.messages_by_day) ? data.messages_by_day : [];
    columnChart($("chart-days"), days.map(function (d) {
      return { key: String(d && d.day), label: shortDay(d && d.day), value: Number(d && d.messages) || 0 };
    }), t("dashboard.messages_by_day"));

    var byChannel = data.messages_by_channel && typeof data.messages_by_channel === "object"
      ? data.messages_by_channel : {};
    barChart($("chart-channels"), Object.keys(byChannel).map(function (ch) {
      return { key: ch, label: channelName(ch), value: Number(byChannel[ch]) || 0, cls: "ch-" + cssToken(ch) };
    }).sort(function (a, b) { return b.value - a.value; }), t("dashboard.messages_by_channel"));

    var bot = data.bot && typeof data.bot === "object" ? data.bot : {};
    barChart($("chart-bot"), ["answered", "helpful", "unhelpful", "handed_off", "contained"]
      .filter(function (k) { return bot[k] !== undefined && bot[k] !== null; })
      .map(function (k) {
        return { key: k, label: t("dashboard.bot." + k), value: Number(bot[k]) || 0, cls: "bot-" + k };
      }), t("dashboard.bot"));

    articleTable($("chart-articles"), Array.isArray(data.articles) ? data.articles : []);
  }

  function empty(box) {
    box.appendChild(el("p", { class: "chart-empty" }, t("dashboard.no_data")));
  }

  /** Vertical bars: one per day. */
  function columnChart(box, rows, title) {
    clear(box);
    if (!rows.length) return empty(box);
    var max = Math.max.apply(null, rows.map(function (r) { return r.value; }).concat([1]));
    var width = 960, height = 260, top = 18, bottom = 26, left = 8, right = 8;
    var plotH = height - top - bottom;
    var slot = (width - left - right) / rows.length;
    var barW = Math.max(2, Math.min(48, slot * 0.7));
    var labelEvery = Math.ceil(rows.length / 14);
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, class: "svg-chart columns",
      role: "img", "aria-label": title, preserveAspectRatio: "xMidYMid meet" });
    chart.appendChild(svg("title", null, title));
    chart.appendChild(svg("line", { class: "axis", x1: left, x2: width - right,
      y1: top + plotH + 0.5, y2: top + plotH + 0.5 }));
    rows.forEach(function (row, i) {
      var h = Math.round((row.value / max) * plotH);
      var x = left + slot * i + (slot - barW) / 2;
      var cx = x + barW / 2;
      var group = svg("g", { class: "col" });
      group.appendChild(svg("title", null, t("dashboard.bar_label", { label: row.key, n: num(row.value) })));
      group.appendChild(svg("rect", { class: "bar", x: x.toFixed(1), y: top + plotH - h,
        width: barW.toFixed(1), height: Math.max(h, 0), rx: 2 }));
      if (rows.length <= 31 && row.value > 0) {
        group.appendChild(svg("text", { class: "value", x: cx.toFixed(1), y: top + plotH - h - 4,
          "text-anchor": "middle" }, num(row.value)));
      }
      if (i % labelEvery === 0) {
        group.appendChild(svg("text", { class: "tick", x: cx.toFixed(1), y: height - 8,
          "text-anchor": "middle" }, row.label));
      }
      chart.appendChild(group);
    });
    box.appendChild(chart);
  }

  /** Horizontal bars: one per category. */
  function barChart(box, rows, title, scale) {
    clear(box);
    if (!rows.length) return empty(box);
    var max = scale || Math.max.apply(null, rows.map(function (r) { return r.value; }).concat([1]));
    var width = 480, rowH = 30, labelW = 120, valueW = 56, pad = 6;
    var height = rows.length * rowH + pad * 2;
    var plotW = width - labelW - valueW;
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, class: "svg-chart hbars",
      role: "img", "aria-label": title, preserveAspectRatio: "xMidYMid meet" });
    chart.appendChild(svg("title", null, title));
    rows.forEach(function (row, i) {
      var y = pad + i * rowH;
      var w = Math.min(plotW, Math.round((row.value / max) * plotW));
      var group = svg("g", { class: "hbar " + (row.cls || "") });
      group.appendChild(svg("title", null, t("dashboard.bar_label", { label: row.label, n: num(row.value) })));
      group.appendChild(svg("text", { class: "tick", x: labelW - 8, y: y + rowH / 2 + 4,
        "text-anchor": "end" }, row.label));
      group.appendChild(svg("rect", { class: "track", x: labelW, y: y + 5, width: plotW, height: rowH - 10, rx: 3 }));
      group.appendChild(svg("rect", { class: "bar", x: labelW, y: y + 5, width: Math.max(w, 0),
        height: rowH - 10, rx: 3 }));
      group.appendChild(svg("text", { class: "value", x: labelW + w + 6, y: y + rowH / 2 + 4 }, num(row.value)));
      chart.appendChild(group);
    });
    box.appendChild(chart);
  }

  var ARTICLE_COLUMNS = ["answered", "helpful", "unhelpful", "handed_off"];

  /** The articles that need attention, as the API orders them: one row each with its
   * counts and a helpful / not helpful bar. The KB editor has no address per article, so
   * a row names the article's id (and says when it is no longer in the knowledge base). */
  function articleTable(box, articles) {
    clear(box);
    if (!articles.length) return empty(box);
    var head = el("tr", null, [el("th", { scope: "col" }, t("dashboard.articles.article"))]
      .concat(ARTICLE_COLUMNS.map(function (key) {
        return el("th", { scope: "col", class: "num" }, t("dashboard.articles." + key));
      }))
      .concat([el("th", { scope: "col" }, t("dashboard.articles.rate"))]));
    var rows = articles.map(function (article) {
      var id = String(article && article.id || "");
      var title = article && article.title ? String(article.title) : "";
      var name = el("th", { scope: "row", class: "article-name" }, [
        el("span", { class: "article-title" }, title || id),
        el("span", { class: "article-id" }, title ? id : t("dashboard.articles.deleted"))
      ]);
      return el("tr", { class: "article-row" + (title ? "" : " gone"), "data-id": id },
        [name].concat(ARTICLE_COLUMNS.map(function (key) {
          var n = Number(article[key]) || 0;
          return el("td", { class: "num " + key + (n > 0 ? " some" : "") }, num(n));
        })).concat([el("td", { class: "rate" }, rateBar(article))]));
    });
    box.appendChild(el("table", { class: "article-table" },
      [el("thead", null, head), el("tbody", null, rows)]));
  }

  /** Helpful (green) against not helpful (red), with the rate beside it. */
  function rateBar(article) {
    var helpful = Number(article.helpful) || 0, unhelpful = Number(article.unhelpful) || 0;
    var rated = helpful + unhelpful, width = 100, height = 10;
    var label = t("dashboard.articles.rate_label", { helpful: num(helpful), unhelpful: num(unhelpful) });
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, class: "svg-chart rate-bar",
      role: "img", "aria-label": label, width: width, height: height });
    chart.appendChild(svg("title", null, label));
    chart.appendChild(svg("rect", { class: "track", x: 0, y: 0, width: width, height: height, rx: 3 }));
    if (rated) {
      var good = Math.round((helpful / rated) * width);
      chart.appendChild(svg("rect", { class: "part helpful", x: 0, y: 0, width: good, height: height }));
      chart.appendChild(svg("rect", { class: "part unhelpful", x: good, y: 0, width: width - good, height: height }));
    }
    var text = rated ? Math.round((helpful / rated) * 100) + "%" : t("dashboard.articles.unrated");
    return [chart, el("span", { class: "rate-value" }, text)];
  }

  // ---------------------------------------------------------------- LINE push quota

  /** This month's LINE push quota and usage; LINE off (404) and API failures say so. */
  function loadQuota() {
    var box = $("line-quota");
    if (box.dataset.line !== "on") return quotaState("off", t("dashboard.line_off"));
    dom.api("GET", "/api/line/quota").then(function (quota) {
      renderQuota(quota || {});
    }).catch(function (error) {
      if (error && error.status === 404) return quotaState("off", t("dashboard.line_off"));
      // a refusal: the API error's own message only (not its code), else the HTTP status
      var refused = error && error.status ? (error.body && error.body.error) || {} : null;
      var message = refused ? refused.message || "HTTP " + error.status : error && error.message || error;
      quotaState("error", t("dashboard.line_error", { message: String(message) }));
    });
    box.dataset.state = "loading";
  }

  function quotaState(state, text) {
    $("line-quota").dataset.state = state;
    $("line-quota-text").textContent = text;
    clear($("line-quota-bar"));
  }

  function renderQuota(quota) {
    var used = Number(quota.used) || 0;
    var limited = quota.type === "limited" && isFinite(Number(quota.limit));
    if (!limited) return quotaState("ok", t("dashboard.line_quota_unlimited", { used: num(used) }));
    var limit = Number(quota.limit);
    quotaState(used >= limit ? "exhausted" : "ok",
      t("dashboard.line_quota_used", { used: num(used), limit: num(limit) }));
    barChart($("line-quota-bar"), [{ key: "used", label: t("dashboard.line_quota"), value: used, cls: "quota-used" }],
      t("dashboard.line_quota"), limit);
  }

  // ---------------------------------------------------------------- wiring

  var today = new Date();
  var weekAgo = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6);
  $("dash-from").value = isoDay(weekAgo);
  $("dash-to").value = isoDay(today);
  $("dash-range").addEventListener("submit", function (event) {
    event.preventDefault();
    load();
  });
  load();
  loadQuota();
})();
