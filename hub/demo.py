"""Demo data: two agents, a small catalog with a store, and customers whose history spans
channels. Seeded once; running the demo again changes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import db
from hub.identity import normalize_email
from hub.knowledge import import_directory
from hub.models import (
    Agent,
    Conversation,
    Customer,
    Direction,
    Identity,
    ItemKind,
    Product,
    Role,
    SenderType,
    Store,
    TimelineItem,
    utcnow,
)
from hub.security import hash_password
from hub.settings import Settings
from kb.articles import default_articles_dir

PICTURES = "/static/products"  # channels/webchat/static/products, served with the chat page
PRODUCTS = [
    Product(sku="OMO-TEA-001", name="静岡煎茶 100g", name_en="Shizuoka sencha 100 g",
            price=1280, image_url=f"{PICTURES}/tea.svg", description="深蒸しの煎茶。"),
    Product(sku="OMO-KETTLE-002", name="電気ケトル 0.8L", name_en="Electric kettle 0.8 L",
            price=5980, image_url=f"{PICTURES}/kettle.svg", description="温度調節つき。"),
    Product(sku="OMO-TOWEL-003", name="今治タオル フェイス", name_en="Imabari face towel",
            price=1650, image_url=f"{PICTURES}/towel.svg", description="綿100%。"),
]
STORES = [Store(id="shibuya", name="omo 渋谷店", address="東京都渋谷区"),
          Store(id="umeda", name="omo 梅田店", address="大阪府大阪市北区")]


async def create_agent(settings: Settings, email: str, password: str, name: str,
                       role: str = Role.AGENT) -> int:
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    engine = db.create_engine(settings.database_url)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            address = normalize_email(email)
            exists = await session.execute(select(Agent.id).where(Agent.email == address))
            if exists.scalar_one_or_none() is not None:
                raise ValueError(f"an agent with e-mail {address} exists")
            agent = Agent(email=address, name=name or address.split("@")[0], role=role,
                          password_hash=hash_password(password))
            session.add(agent)
            await session.flush()
            return agent.id  # type: ignore[return-value]
    finally:
        await engine.dispose()


async def seed(settings: Settings) -> bool:
    """Returns False when the demo data is already there."""
    engine = db.create_engine(settings.database_url)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            if (await session.execute(select(func.count()).select_from(Agent))).scalar():
                return False
            session.add_all([
                Agent(email="agent@example.com", name="Aoi (agent)", role=Role.AGENT,
                      password_hash=hash_password("demo-agent"), locale="ja"),
                Agent(email="lead@example.com", name="Ken (lead)", role=Role.SUPERVISOR,
                      password_hash=hash_password("demo-lead"), locale="ja"),
                *[Product(**p.model_dump()) for p in PRODUCTS],
                *[Store(**s.model_dump()) for s in STORES],
            ])
            await _seed_customers(session)
            await import_directory(session, default_articles_dir())
        return True
    finally:
        await engine.dispose()


async def _seed_customers(session: AsyncSession) -> None:
    now = utcnow()
    stories = [
        ("山田 花子", [("web", "demo-visitor-hanako"), ("line", "U" + "a" * 32)], [
            ("web", "customer", "注文した電気ケトルがまだ届きません。", 50),
            ("web", "agent", "ご不便をおかけしております。お調べしますね。", 48),
            ("line", "customer", "LINEから失礼します。追跡番号はありますか？", 20),
        ]),
        ("John Smith", [("email", "john.smith@example.net")], [
            ("email", "customer", "Can I return a towel I bought in store?", 30),
        ]),
        ("佐藤 健", [("web", "demo-visitor-ken"), ("phone", "+819012345678")], [
            ("web", "customer", "ポイントの有効期限を教えてください。", 15),
            ("phone", "customer", "（通話）ポイントについて問い合わせ", 5),
        ]),
    ]
    for name, identities, messages in stories:
        customer = Customer(display_name=name)
        session.add(customer)
        await session.flush()
        for kind, value in identities:
            session.add(Identity(customer_id=customer.id, kind=kind, value=value,
                                 verified=kind != "web"))
        opened_at = now - timedelta(minutes=messages[0][3])
        conversation = Conversation(customer_id=customer.id, channels=sorted(
            {m[0] for m in messages}), last_channel=messages[-1][0], unread_count=1,
            created_at=opened_at)
        session.add(conversation)
        await session.flush()
        previous = None
        for channel, sender, text, minutes_ago in messages:
            at = now - timedelta(minutes=minutes_ago)
            if previous and previous != channel:
                session.add(TimelineItem(
                    conversation_id=conversation.id, kind=ItemKind.SYSTEM, channel=channel,
                    direction=Direction.INTERNAL, sender_type=SenderType.SYSTEM,
                    data={"event": "channel_switched", "from": previous, "to": channel},
                    created_at=at - timedelta(seconds=1)))
            item = TimelineItem(
                conversation_id=conversation.id, channel=channel, created_at=at, text=text,
                kind=ItemKind.CALL if channel == "phone" else ItemKind.MESSAGE,
                direction=Direction.INBOUND if sender == "customer" else Direction.OUTBOUND,
                sender_type=sender, delivery_status="sent" if sender != "customer" else "received")
            session.add(item)
            await session.flush()
            conversation.last_item_id = item.id
            previous = channel
            conversation.last_preview = text
            conversation.last_activity_at = at
