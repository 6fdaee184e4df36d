-- A command is one statement, so its idempotency row is written before the statement knows its event's position:
-- instead of the response text, the row names the event the command recorded (`event_sequence`), and a replay
-- answers from that event. Rows written before keep their `response_body` and are replayed from it.
alter table idempotency_key add column event_sequence bigint;
