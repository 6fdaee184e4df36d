-- The relay can read the outbox two ways (RELAY_MODE): `notify` marks every row it published (`published_at`);
-- `wal` streams committed rows from a logical replication slot and marks nothing per row. This one-row table says
-- which slot continues the published log (`slot`, null while the notify relay publishes) and how far the log is
-- known published without a mark (`published_through`: every sequence up to it went out in `wal` mode, or was never
-- committed), so that a switch back to `notify` resumes after it instead of publishing the whole log again.
create table relay_progress (
    only_row          boolean primary key default true check (only_row),
    slot              text,
    published_through bigint not null default 0,
    updated_at        timestamptz not null default now()
);
insert into relay_progress default values;

-- What is not yet known published, whichever mode published the rest: the rows the notify relay has to publish,
-- and what `outbox_backlog` counts.
create view outbox_backlog as
    select o.* from outbox o
    where o.published_at is null and o.sequence > (select published_through from relay_progress);
