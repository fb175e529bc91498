"""knowledge base: pending drafts of published articles; versions hold the whole article

An edit of a published article is kept as a newer version (``kb_articles.draft_version``)
while the article row keeps the live text. A version now holds everything an article has
(language, products, tags too), so publishing a draft or restoring a version brings all of
it back; versions made before this migration take them from their article.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FROM_ARTICLE = ("(SELECT a.{column} FROM kb_articles a "
                 "WHERE a.id = kb_article_versions.article_id)")


def upgrade() -> None:
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft_version', sa.Integer(), nullable=True))

    with op.batch_alter_table('kb_article_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8),
                                      nullable=True))
        batch_op.add_column(sa.Column('products', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('draft', sa.Boolean(), nullable=True))
    # the best that is known of an old version: its article's language, products and tags
    # (restoring one brought back only its title, answer and questions, so this is the same)
    op.execute("UPDATE kb_article_versions SET "
               + ", ".join(f"{column} = {_FROM_ARTICLE.format(column=column)}"
                           for column in ("locale", "products", "tags"))
               + ", draft = false")
    with op.batch_alter_table('kb_article_versions', schema=None) as batch_op:
        batch_op.alter_column('locale', existing_type=sqlmodel.sql.sqltypes.AutoString(length=8),
                              nullable=False)
        batch_op.alter_column('products', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('tags', existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column('draft', existing_type=sa.Boolean(), nullable=False)


def downgrade() -> None:
    # Without drafts the article row is its newest version: a pending draft is discarded the
    # way the hub discards one (its text stays in the history), by a newer version that
    # restates the live text, so no version number is used twice.
    op.execute(
        "INSERT INTO kb_article_versions (article_id, version, title, body, locale, questions,"
        " products, tags, published, draft, updated_by, created_at)"
        " SELECT id, draft_version + 1, title, body, locale, questions, products, tags,"
        " published, false, updated_by, updated_at FROM kb_articles"
        " WHERE draft_version IS NOT NULL")
    op.execute("UPDATE kb_articles SET version = draft_version + 1"
               " WHERE draft_version IS NOT NULL")
    with op.batch_alter_table('kb_article_versions', schema=None) as batch_op:
        batch_op.drop_column('draft')
        batch_op.drop_column('tags')
        batch_op.drop_column('products')
        batch_op.drop_column('locale')

    # in place, not as a batch: on SQLite a batch would copy kb_articles into a new table and
    # drop the old one, which kb_article_versions refers to (the hub turns foreign keys on);
    # SQLite drops a plain column itself since 3.35
    op.drop_column('kb_articles', 'draft_version')
