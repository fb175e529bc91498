"""omohub knowledge base: articles, retrieval with calibrated confidence, and the bot policy.

Entry points the hub uses:

- ``kb.articles.load_directory(path)`` → ``LoadResult(articles, errors)`` (errors carry path+line)
- ``kb.locales.normalize_locale(tag)`` → a language tag's usual spelling, or ``InvalidLocale``
- ``kb.index.KnowledgeBase.from_articles(articles)`` → ``.search(...)``, ``.decide(...)``
- ``kb.bot.BotPolicy(kb, hours=HoursConfig())`` with ``BotState`` stored as JSON
- ``kb.hours.is_open(dt, config)``, ``kb.hours.back_at_text(dt, locale, config)``
- ``kb.eval.eval_command(path)`` for ``omohub kb eval FILE`` (``run_eval`` to call it)

Nothing here knows about channels, HTTP or the database.
"""
