-- The read models the relay delivers every event to, one row each, registered by the relay when it first knows of
-- one. `whole_log_pending`: the read model was registered while the log was empty, so its queue has been sent every
-- event of the log, and no checkpoint has told it so yet. The relay marks the first checkpoint it routes to such a
-- read model (`whole-log` header); a read model's store that handles that checkpoint holds the log from its start.
-- A read model registered when the log already held events was never sent those: it must be built from the log
-- before it can vouch for a position (decision 0019).
create table read_model_delivery (
    name              text primary key,
    whole_log_pending boolean not null,
    registered_at     timestamptz not null default now()
);

-- The order views were delivered every event by every earlier release: on a log that holds events they are taken
-- to hold it all (their store knows whether it does; see decision 0019).
insert into read_model_delivery (name, whole_log_pending) select 'orders', not exists (select 1 from outbox);
