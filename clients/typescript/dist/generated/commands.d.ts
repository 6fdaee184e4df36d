export interface paths {
    "/commands/orders": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Place an order. */
        post: operations["place_order"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/commands/orders/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Cancel an order that has not shipped. */
        post: operations["cancel"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/commands/orders/{id}/confirm": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Confirm a placed order. */
        post: operations["confirm"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/commands/orders/{id}/ship": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Ship a confirmed order. */
        post: operations["ship"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The event log in `sequence` order, for replays, or one order's events (admin token; `events:read` with
         *     `AUTH_MODE=jwt`).
         */
        get: operations["feed"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/live": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the process is up and serving HTTP. */
        get: operations["live"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Readiness: what the service depends on is reachable; `degraded` (still 200) names what works only in part. */
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Prometheus metrics, text format. */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description Body of `cancel` (optional). */
        CancelBody: {
            /**
             * Format: int64
             * @description Apply only if the order is still at this version (optimistic concurrency); 409 otherwise.
             */
            expectedVersion?: number | null;
            /** @description Why the order was cancelled; kept on the order and its view. */
            reason?: string | null;
        };
        /** @description The answer to every successful command. */
        CommandAccepted: {
            currency: string;
            /** Format: uuid */
            orderId: string;
            /**
             * Format: int64
             * @description The event's global position in the log: the `minPosition` token for list reads.
             */
            position: number;
            /**
             * Format: int64
             * @description The order's version after the command: the `minVersion` token for reads.
             */
            sequenceId: number;
            /**
             * @description The order's status after the command.
             * @example Placed
             */
            status: string;
            /** @description Decimal, as a string. */
            total: string;
        };
        /**
         * @description What travels on the broker and what the event log feed returns.
         *
         *     `payload` stays raw JSON here so that an envelope can be read (and dead-lettered with a reason) even when its
         *     payload is of an unknown type or schema version.
         */
        Envelope: {
            /** Format: uuid */
            eventId: string;
            eventType: string;
            /** Format: date-time */
            occurredAt: string;
            /** Format: uuid */
            orderId: string;
            /** @description The order's whole state after the change, in the event's schema version. */
            payload: Record<string, never>;
            /** Format: int32 */
            schemaVersion: number;
            /**
             * Format: int64
             * @description Global position in the event log (the outbox's `sequence`).
             */
            sequence: number;
            /** @description W3C `traceparent` of the request that caused the event, when there was one. */
            traceparent?: string | null;
            /**
             * Format: int64
             * @description The order's version after this event: 1 for `OrderPlaced`, then +1 per change.
             */
            version: number;
        };
        /** @description The extension members either service uses; each appears only where it applies. */
        Extensions: {
            /**
             * Format: int64
             * @description On a command's 409: the order's version now.
             */
            currentVersion?: number | null;
            /** @description On a `validation` problem: every broken rule of a rejected command, by JSON path. */
            errors?: components["schemas"]["FieldError"][] | null;
            /** @description On a command's 409: the order's status now (`status` is the HTTP status in a problem document). */
            orderStatus?: string | null;
        };
        FeedMetadata: {
            /**
             * Format: int64
             * @description The newest committed sequence when the page was read.
             */
            head: number;
            /**
             * Format: int64
             * @description Pass as `after` for the next page.
             */
            nextAfter: number;
        };
        /** @description Events in global `sequence` order, and where the log stands. */
        FeedPage: {
            /** @description The envelopes, as the relay publishes them. */
            data: components["schemas"]["Envelope"][];
            metadata: components["schemas"]["FeedMetadata"];
        };
        /** @description One broken rule of a rejected request, named by the JSON path of the field that broke it. */
        FieldError: {
            field: string;
            message: string;
        };
        /** @description The answer of `GET /health/live`. */
        Liveness: {
            /** @description Always `up`. */
            status: string;
        };
        /**
         * @description The body of `POST /commands/orders`. Field types are checked while parsing JSON (a wrong type is reported with
         *     its path); the rules are checked by [`NewOrder::parse`], which reports every broken rule at once.
         */
        PlaceOrder: {
            /** @description ISO 4217 code, default `USD`. */
            currency?: string | null;
            /**
             * @description Required, except from a customer token (`AUTH_MODE=jwt`), which places for its own customer (the document a
             *     `jwt` service serves says so).
             */
            customerId: string;
            /** @description Default `standard`. */
            customerSegment?: string | null;
            items: components["schemas"]["PlaceOrderLine"][];
        };
        PlaceOrderLine: {
            /** @description What the customer saw the item called: 1 to 200 characters, not blank, no control characters. */
            name?: string | null;
            /** Format: int64 */
            quantity: number;
            sku: string;
            /** @description More than 0, at most 1000000, at most two decimal places: a string (kept verbatim) or a number. */
            unitPrice: string;
        };
        /** @description An RFC 9457 problem document: what every 4xx and 5xx of both services carries. */
        Problem: components["schemas"]["Extensions"] & {
            /** @description What went wrong, for people. */
            detail: string;
            /** Format: int32 */
            status: number;
            /** @description The status's reason phrase. */
            title: string;
            /** @description `/problems/<kind>` (the kinds are listed in docs/api.md, "Errors"). */
            type: string;
        };
        /** @description The answer of `GET /health/ready`. */
        Readiness: {
            /** @description Every check by name: `up` or `down`. */
            checks: {
                [key: string]: string;
            };
            /** @description The checks that degrade the service without taking it out of service, while they do. */
            degraded?: string[] | null;
            /** @description On a 503: the hard checks that are down. */
            down?: string[] | null;
            /** @description Why each degraded check is degraded (and a hard check that is down, where there is more to say). */
            reasons?: {
                [key: string]: string;
            } | null;
            /** @description `ready`, `degraded` (200) or `unavailable` (503). */
            status: string;
        };
        /** @description Body of `confirm` and `ship` (optional). */
        TransitionBody: {
            /**
             * Format: int64
             * @description Apply only if the order is still at this version (optimistic concurrency); 409 otherwise.
             */
            expectedVersion?: number | null;
        };
    };
    responses: {
        /** @description The request is malformed or breaks a rule; `errors` names each field. */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description Stale `expectedVersion`, or a transition the order's status does not allow. */
        Conflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The token may not do this: another customer named, or a scope it lacks. */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The `Idempotency-Key` was used with a different request. */
        KeyReused: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description No such order (or one of another customer, which a customer token cannot see). */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The body is larger than 64 KiB. */
        TooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description This client is over its command rate; retry after `Retry-After` seconds. */
        TooManyRequests: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `AUTH_MODE=jwt`: the bearer token (or a view-stream ticket) is missing or refused; `WWW-Authenticate` says why. */
        Unauthenticated: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The admin token is missing or wrong, or (`AUTH_MODE=jwt`) the bearer token is. */
        Unauthorized: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The order store is unavailable; retry after `Retry-After` seconds. */
        Unavailable: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The body is not `application/json`. */
        WrongMediaType: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
    };
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    place_order: {
        parameters: {
            query?: never;
            header?: {
                /** @description Retrying with the same key and body answers the first answer again; a different body is a 422. */
                "Idempotency-Key"?: string | null;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PlaceOrder"];
            };
        };
        responses: {
            /** @description Placed: `sequenceId` is the `minVersion` to read it at */
            201: {
                headers: {
                    /** @description Where the order's view will be */
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandAccepted"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["WrongMediaType"];
            422: components["responses"]["KeyReused"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    cancel: {
        parameters: {
            query?: never;
            header?: {
                /** @description Retrying with the same key and body answers the first answer again; a different body is a 422. */
                "Idempotency-Key"?: string | null;
            };
            path: {
                /** @description The order id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": null | components["schemas"]["CancelBody"];
            };
        };
        responses: {
            /** @description Cancelled: the new version is the `minVersion` token */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandAccepted"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["WrongMediaType"];
            422: components["responses"]["KeyReused"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    confirm: {
        parameters: {
            query?: never;
            header?: {
                /** @description Retrying with the same key and body answers the first answer again; a different body is a 422. */
                "Idempotency-Key"?: string | null;
            };
            path: {
                /** @description The order id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": null | components["schemas"]["TransitionBody"];
            };
        };
        responses: {
            /** @description Confirmed: the new version is the `minVersion` token */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandAccepted"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["WrongMediaType"];
            422: components["responses"]["KeyReused"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    ship: {
        parameters: {
            query?: never;
            header?: {
                /** @description Retrying with the same key and body answers the first answer again; a different body is a 422. */
                "Idempotency-Key"?: string | null;
            };
            path: {
                /** @description The order id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": null | components["schemas"]["TransitionBody"];
            };
        };
        responses: {
            /** @description Shipped: the new version is the `minVersion` token */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandAccepted"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            413: components["responses"]["TooLarge"];
            415: components["responses"]["WrongMediaType"];
            422: components["responses"]["KeyReused"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    feed: {
        parameters: {
            query?: {
                /** @description Events after this sequence (default 0). */
                after?: number;
                /** @description Most events in the page (default 500). */
                limit?: number;
                /** @description Only this order's events. */
                orderId?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of events */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FeedPage"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            503: components["responses"]["Unavailable"];
        };
    };
    live: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Up */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Liveness"];
                };
            };
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready, or degraded with the reasons */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Readiness"];
                };
            };
            /** @description Not ready: names what is down */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Readiness"];
                };
            };
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Prometheus text exposition */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
        };
    };
}
