-- Event schema v2: customers carry a segment, order lines an optional display name.
alter table customer_order add column customer_segment text not null default 'standard';
alter table order_line add column name text;
