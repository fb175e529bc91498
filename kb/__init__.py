"""omohub knowledge base: articles, retrieval with calibrated confidence, and the bot policy.

Entry points the hub uses:

- ``kb.articles.load_directory(path)`` → ``LoadResult(articles, errors)`` (errors carry path+line)
- ``kb.index.KnowledgeBase.from_articles(articles)`` → ``.search(...)``, ``.decide(...)``
- ``kb.bot.BotPolicy(kb, hours=HoursConfig())`` with ``BotState`` stored as JSON
- ``kb.hours.is_open(dt, config)``, ``kb.hours.back_at_text(dt, locale, config)``
- ``kb.eval.run_eval(path, verbose=False, out=print)`` for ``omohub kb eval FILE``

Nothing here knows about channels, HTTP or the database.
"""
