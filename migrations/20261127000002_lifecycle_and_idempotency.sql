-- Order lifecycle (cancel reason) and idempotency keys of commands.

alter table customer_order add column cancel_reason text;

-- One row per Idempotency-Key, written in the same transaction as the command it guards, so a key exists exactly
-- when its command committed. `fingerprint` identifies the request (route + canonical body); the response is
-- replayed byte for byte. Rows older than 24 hours are expired: replaced on reuse and purged in the background.
create table idempotency_key (
    key           text        primary key,
    fingerprint   text        not null,
    status_code   integer     not null,
    location      text,
    response_body text        not null,
    created_at    timestamptz not null default now()
);

create index idempotency_key_created_at on idempotency_key (created_at);
