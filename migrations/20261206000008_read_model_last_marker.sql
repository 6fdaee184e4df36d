-- The checkpoint marker the relay last had routed to each read model (its `closed_through`): the next marker names
-- it (`previous`), so that the markers of a read model form a chain and a queue that lost messages is found out by
-- the first marker after the loss (decision 0023). Null until the first one.
alter table read_model_delivery add column last_marker bigint;
