import type { components as CommandSchemas } from './generated/commands.js';
import type { components as QuerySchemas } from './generated/queries.js';
type Commands = CommandSchemas['schemas'];
type Queries = QuerySchemas['schemas'];
/**
 * The body of `POST /commands/orders`. `customerId` may be left out with a customer token (`AUTH_MODE=jwt`): the
 * order is then the token's customer's.
 */
export type PlaceOrder = Omit<Commands['PlaceOrder'], 'customerId'> & {
    customerId?: string;
};
export type PlaceOrderLine = Commands['PlaceOrderLine'];
/** The answer to every command that was applied. */
export type CommandAccepted = Commands['CommandAccepted'];
export type OrderView = Queries['OrderView'];
export type OrderStatus = Queries['OrderStatus'];
export type ViewMetadata = Queries['ViewMetadata'];
export type ListMetadata = Queries['ListMetadata'];
export type PositionMetadata = Queries['PositionMetadata'];
export type CustomerSummary = Queries['CustomerSummary'];
export type Dashboard = Queries['Dashboard'];
export type DayRow = Queries['DayRow'];
export type StreamTicket = Queries['StreamTicket'];
export {};
