-- The write model (one row per order, one per line) and the outbox, which is also the event log.

create table customer_order (
    id           uuid primary key,
    customer_id  text        not null,
    currency     char(3)     not null,
    status       text        not null,
    total        numeric(16, 2) not null check (total > 0),
    version      bigint      not null check (version >= 1),
    placed_at    timestamptz not null,
    updated_at   timestamptz not null
);

create table order_line (
    order_id    uuid          not null references customer_order (id),
    line_no     integer       not null,
    sku         text          not null,
    quantity    integer       not null check (quantity between 1 and 1000),
    unit_price  numeric(9, 2) not null check (unit_price > 0),
    line_total  numeric(16, 2) not null,
    primary key (order_id, line_no)
);

-- One row per event. `sequence` is the global position, assigned at insert; a transaction that commits late can
-- expose a lower sequence after a higher one, so the relay selects by `published_at is null`, never by high-water
-- mark. Rows are kept after publishing: this table is the replay source.
create table outbox (
    sequence       bigint generated always as identity primary key,
    event_id       uuid        not null unique,
    event_type     text        not null,
    schema_version integer     not null,
    order_id       uuid        not null,
    order_version  bigint      not null,
    payload        jsonb       not null,
    traceparent    text,
    occurred_at    timestamptz not null,
    published_at   timestamptz,
    unique (order_id, order_version)
);

create index outbox_unpublished on outbox (sequence) where published_at is null;

-- Wake the relay when an outbox row commits (NOTIFY is delivered at commit, once per transaction and channel).
create function outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('outbox_inserted', '');
    return null;
end;
$$;

create trigger outbox_inserted after insert on outbox
    for each statement execute function outbox_notify();
