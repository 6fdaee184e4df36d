export interface paths {
    "/admin/projector/slowdown": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The projector's slowdown of this replica (admin token). */
        get: operations["slowdown"];
        put?: never;
        /**
         * Delays every batch the projector applies, for ten minutes at most, to watch reads wait for the read model: a
         *     demo, not a production control (admin token).
         */
        post: operations["slow_down"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/read-models/{projection}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A read model's generations, the rebuild in progress and the position (admin token). */
        get: operations["read_model_status"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/read-models/{projection}/rebuild": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Rebuild a read model into a new generation from the event log, then switch reads to it (admin token). */
        post: operations["rebuild"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/read-models/{projection}/rollback": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Make a read model's previous generation active again, caught up from the log first: a job (admin token). */
        post: operations["rollback"];
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
    "/queries/_status": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Where the read model stands, for people: what was applied last, how fresh it is, what waits, what its checks
         *     against the log found (which name an order of any customer). In `jwt` mode it needs the `orders:admin` scope; in
         *     `none` mode every caller may read every order, and this too.
         */
        get: operations["status"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/queries/customers/{customerId}/summary": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A customer's orders summed up; with `minPosition`, waits until the summary includes the client's writes. */
        get: operations["customer_summary"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/queries/dashboard/daily": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Sales per day and currency; with `minPosition`, waits until the figures include the client's writes. */
        get: operations["daily_dashboard"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/queries/orders": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Views newest first, in stable pages; with `minPosition`, waits until the list includes the client's writes. */
        get: operations["list_orders"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/queries/orders/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One order's view; with `minVersion`, waits (server-side, up to `waitMs`) until the view has caught up. */
        get: operations["get_order"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/queries/orders/{id}/stream": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Server-Sent Events: the view (`event: view`, `id: <version>`, data as a 200 single read) once at `minVersion`,
         *     then on every change; `Last-Event-ID` resumes after that version. In `jwt` mode the stream ends when the token
         *     it was opened with (or that minted its ticket) expires, with `event: expired` (data `{detail}`) first.
         */
        get: operations["stream_order"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/queries/orders/{id}/stream-ticket": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * A ticket that opens the view stream of one order for a minute ([`auth::tickets::TICKET_LIFETIME`]), for a
         *     browser's `EventSource`, which cannot send the bearer token. Any order id gets one: the stream itself hides
         *     what the caller may not see.
         */
        post: operations["stream_ticket"];
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
        /** @description A rebuild's progress. */
        BuildProgress: {
            /**
             * Format: double
             * @description Null until the rate is known.
             */
            etaSeconds?: number | null;
            /** Format: double */
            eventsPerSecond: number;
            /** Format: date-time */
            heartbeatAt?: string | null;
            /**
             * Format: int64
             * @description Events left to replay.
             */
            lagEvents: number;
            name: string;
            /**
             * Format: int64
             * @description Events replayed so far.
             */
            replayed: number;
            /** Format: date-time */
            startedAt?: string | null;
            /**
             * Format: int64
             * @description The log's head when the rebuild began.
             */
            total: number;
        };
        /** @description A read model being built from the event log, as a read that cannot be vouched for sees it. */
        Building: {
            /**
             * @description The generation being built (null until a rebuild has claimed one: it starts within seconds where the
             *     query-service can read the event feed).
             */
            generation?: string | null;
            /**
             * Format: int64
             * @description Events replayed from the log so far, of `total`.
             */
            replayed: number;
            /** Format: int64 */
            total: number;
        };
        /** @description What the background check of the views against the log has found. */
        CheckStatus: {
            /** Format: int64 */
            checked: number;
            /** @description Views found differing from the log, by kind (`missing`, `behind`, `diverged`, `ahead`). */
            divergent: {
                [key: string]: number;
            };
            lastFinding?: null | components["schemas"]["LastFinding"];
            /**
             * Format: double
             * @description Orders checked per second (0: off).
             */
            ratePerSecond: number;
        };
        /** @description A customer's orders summed up. */
        CustomerSummary: {
            /**
             * @description Orders by their current status (every status, 0 when none).
             * @example {
             *       "Placed": 1,
             *       "Confirmed": 0,
             *       "Shipped": 2,
             *       "Cancelled": 1
             *     }
             */
            byStatus: {
                [key: string]: number;
            };
            customerId: string;
            /**
             * Format: date-time
             * @description When the first order was placed (null: no orders yet, on a 202).
             */
            firstOrderAt?: string | null;
            /** Format: date-time */
            lastOrderAt?: string | null;
            /**
             * Format: int64
             * @description Orders placed, whatever became of them.
             */
            orders: number;
            /** @description The newest orders (by `placedAt`), newest first, at most 5. */
            recentOrderIds: string[];
            /**
             * @description Per currency, the exact total of the orders not cancelled (placed, confirmed or shipped).
             * @example {
             *       "EUR": "129.90"
             *     }
             */
            spent: {
                [key: string]: string;
            };
        };
        /** @description Sales per day (UTC) and currency. */
        Dashboard: {
            /** @description The days with any activity, oldest first, one row per currency; a day without a row had none. */
            days: components["schemas"]["DayRow"][];
            /** Format: date */
            from: string;
            /** Format: date */
            to: string;
            /** @description The whole range, per currency. */
            totals: components["schemas"]["DayRow"][];
        };
        /** @description `GET /queries/dashboard/daily` (200, or 202 while behind `minPosition`). */
        DashboardRead: {
            data: components["schemas"]["Dashboard"];
            metadata: components["schemas"]["PositionMetadata"];
        };
        /** @description What happened on one day (or, in `totals`, over the range) in one currency. */
        DayRow: {
            /** Format: int64 */
            cancelled: number;
            /** Format: int64 */
            confirmed: number;
            currency: string;
            /**
             * Format: date
             * @description The day, `YYYY-MM-DD` (absent in `totals`).
             */
            day?: string | null;
            /**
             * Format: int64
             * @description Orders placed that day (whatever became of them later).
             */
            placed: number;
            /** @description The exact total of the orders shipped that day. */
            revenue: string;
            /** Format: int64 */
            shipped: number;
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
        /** @description One broken rule of a rejected request, named by the JSON path of the field that broke it. */
        FieldError: {
            field: string;
            message: string;
        };
        /** @description One document that differs from the log. */
        Finding: {
            kind: components["schemas"]["Kind"];
            /**
             * Format: int64
             * @description The newest logged version (none when the log does not know the order).
             */
            logVersion?: number | null;
            /**
             * @description The document's id: the order's, for the order views and the customer summary; `<order id>:<step>` for the
             *     sales dashboard's facts.
             */
            orderId: string;
            /**
             * Format: int64
             * @description The stored view's version (none when missing or unreadable).
             */
            viewVersion?: number | null;
        };
        /** @description One generation, its role and how many views it holds (estimated). */
        GenerationSize: {
            name: string;
            /** @description `active`, `previous`, `building` or `rejoining`. */
            role: string;
            /** Format: int64 */
            views: number;
        };
        /**
         * @description How a view differs from the log.
         * @enum {string}
         */
        Kind: "missing" | "behind" | "diverged" | "ahead";
        /** @description The newest finding, when it was made. */
        LastFinding: components["schemas"]["Finding"] & {
            /** Format: date-time */
            at: string;
        };
        ListMetadata: {
            building?: null | components["schemas"]["Building"];
            /**
             * Format: int64
             * @description On a 202: the position asked for.
             */
            minPosition?: number | null;
            /**
             * @description With `minPosition`, on a 200: positions up to it whose events were dead-lettered and so are in no view
             *     (lowest first, at most 100); empty when the list is complete.
             */
            missingPositions?: number[] | null;
            /** @description The `cursor` of the next page; null on the last. */
            nextCursor?: string | null;
            /**
             * Format: int64
             * @description With `minPosition`: the position the read model has reached.
             */
            position?: number | null;
            /** @description With `minPosition`: true (202) while the read model is behind it. */
            processing?: boolean | null;
        };
        /** @description A page of views, newest first. */
        ListPage: {
            data: components["schemas"]["OrderView"][];
            metadata: components["schemas"]["ListMetadata"];
        };
        /** @description The answer of `GET /health/live`. */
        Liveness: {
            /** @description Always `up`. */
            status: string;
        };
        /**
         * @description Where an order is in its life.
         * @enum {string}
         */
        OrderStatus: "Placed" | "Confirmed" | "Shipped" | "Cancelled";
        /** @description One order as the read model holds it. */
        OrderView: {
            /** @description Set on cancelled orders whose cancel gave one. */
            cancelReason?: string | null;
            currency: string;
            customerId: string;
            /** @description Views written before event schema v2 lack it until they are rebuilt. */
            customerSegment?: string | null;
            /**
             * Format: int64
             * @description Units ordered: the sum of the lines' quantities.
             */
            itemCount: number;
            items: components["schemas"]["ViewLine"][];
            /** Format: uuid */
            orderId: string;
            /** Format: date-time */
            placedAt: string;
            status: components["schemas"]["OrderStatus"];
            /** @description Decimal, as a string. */
            total: string;
            /** Format: date-time */
            updatedAt: string;
            /** Format: int64 */
            version: number;
        };
        /**
         * @description Where a read of a whole read model stands against the `minPosition` it asked for (every field absent without
         *     one).
         */
        PositionMetadata: {
            building?: null | components["schemas"]["Building"];
            /**
             * Format: int64
             * @description On a 202: the position asked for.
             */
            minPosition?: number | null;
            /**
             * @description With `minPosition`, on a 200: positions up to it whose events were dead-lettered by this read model's
             *     projection, so that they count nowhere in it (lowest first, at most 100); empty when it is complete.
             */
            missingPositions?: number[] | null;
            /**
             * Format: int64
             * @description With `minPosition`: the position the read model has reached.
             */
            position?: number | null;
            /** @description With `minPosition`: true (202) while the read model is behind it. */
            processing?: boolean | null;
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
        ProcessingMetadata: {
            /** Format: int64 */
            minVersion: number;
            /** @description Always true on a 202. */
            processing: boolean;
            /**
             * Format: int64
             * @description The version the view is at (0: none yet).
             */
            version: number;
        };
        ProjectorStatus: {
            consuming: boolean;
            /**
             * Format: double
             * @description Freshness lag of the last event applied.
             */
            lagMs: number;
            /** Format: int64 */
            lastAppliedSequence: number;
            /** @description The partitions of a split queue (`PROJECTOR_PARTITIONS` > 1) this replica consumes now; empty otherwise. */
            partitions: number[];
            /**
             * Format: int64
             * @description The read model's position as this replica knows it (announced by its projection or a notice).
             */
            position: number;
            /** @description The projection's name (its read model's). */
            projection: string;
            /**
             * Format: int64
             * @description Messages ready in the projection's queue (sampled).
             */
            queueDepth: number;
            slowdown?: null | components["schemas"]["SlowdownState"];
        };
        /** @description `GET /admin/read-models/{projection}`: the generations, the rebuild in progress and the position. */
        ReadModelStatus: {
            /** @description The generation reads go to. */
            active: string;
            building?: null | components["schemas"]["BuildProgress"];
            /**
             * @description Whether the active generation holds the log from its start. While it does not, reads at a position answer
             *     202 and the read model is built from the event log (`building`).
             */
            complete: boolean;
            generations: components["schemas"]["GenerationSize"][];
            /**
             * Format: int64
             * @description Every event up to this sequence has been applied.
             */
            position: number;
            /** @description Kept generations, newest first: what a rollback returns to. */
            previous: string[];
            /** @description The previous generation a rollback is catching up, until it is active (null when none is). */
            rejoining?: string | null;
            /** Format: date-time */
            switchedAt?: string | null;
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
        /**
         * @description `POST /admin/read-models/{projection}/rebuild` and `…/rollback`: the generation being built, or rolled back to,
         *     and where to watch it.
         */
        RebuildStarted: {
            generation: string;
            /** @description The path of the status endpoint (also the `Location`). */
            progress: string;
            /** @description `building` (a rebuild) or `rolling back` (a rollback). */
            status: string;
        };
        /** @description `GET /queries/_status`: where the read model stands, for people. */
        ServiceStatus: {
            activeGeneration: string;
            /** @description The generation a rebuild is writing, if one runs. */
            building?: string | null;
            checks: components["schemas"]["CheckStatus"];
            /**
             * Format: int64
             * @description Every event up to this sequence has been applied.
             */
            position: number;
            /** @description Every projection this replica runs, the order views' first (empty on a replica that runs no projector). */
            projections: components["schemas"]["ProjectorStatus"][];
            projector?: null | components["schemas"]["ProjectorStatus"];
            /** @description Reads waiting for a version or a position on this replica. */
            waitingReads: number;
        };
        /** @description The projector's demo slowdown. */
        SlowdownState: {
            /**
             * Format: int64
             * @description Delay before each batch, in ms (0: none).
             */
            delayMs: number;
            /**
             * Format: date-time
             * @description When the slowdown ends by itself.
             */
            endsAt?: string | null;
        };
        /**
         * @description `POST /queries/orders/{id}/stream-ticket`: a ticket that opens that order's view stream without an
         *     `Authorization` header (what a browser's `EventSource` needs).
         */
        StreamTicket: {
            /**
             * Format: int64
             * @description Seconds the ticket opens the stream for.
             */
            expiresIn: number;
            /** @description The stream's path with the ticket (the stream starts at version 1); add `minVersion` to start later. */
            streamUrl: string;
            ticket: string;
        };
        /** @description `GET /queries/customers/{customerId}/summary` (200, or 202 while behind `minPosition`). */
        SummaryRead: {
            data: components["schemas"]["CustomerSummary"];
            metadata: components["schemas"]["PositionMetadata"];
        };
        /** @description One line of a view: what was ordered and what it cost. */
        ViewLine: {
            /** @description Decimal, as a string. */
            lineTotal: string;
            name?: string | null;
            /** Format: int64 */
            quantity: number;
            sku: string;
            /** @description Decimal, as a string. */
            unitPrice: string;
        };
        ViewMetadata: {
            /** Format: date-time */
            lastUpdated: string;
            /** @description Always false on a 200. */
            processing: boolean;
            /** Format: int64 */
            version: number;
        };
        /** @description A 202 single read: the view is not at `minVersion` yet (it may not exist yet: `data` null). */
        ViewProcessing: {
            data?: null | components["schemas"]["OrderView"];
            metadata: components["schemas"]["ProcessingMetadata"];
        };
        /** @description A 200 single read (and each `view` event of a stream). */
        ViewRead: {
            data: components["schemas"]["OrderView"];
            metadata: components["schemas"]["ViewMetadata"];
        };
    };
    responses: {
        /** @description A malformed id or parameter, or a date range that is not one; `detail` names it. */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description A rebuild already runs, there is nothing to roll back to, or this replica runs no projector. */
        Conflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description The token may not do this: another customer's list, or a scope it lacks. */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description No such order in the read model (or another customer's, which a customer token cannot see), no orders of a customer, no such read model, or an admin endpoint without a configured token. */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description This client (or this service) holds as many view streams and waiting reads as it may; retry after `Retry-After`. */
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
        /** @description The read store or the event feed is unavailable; retry after `Retry-After`. */
        Unavailable: {
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
    slowdown: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The slowdown in force (`delayMs` 0 when none) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SlowdownState"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
        };
    };
    slow_down: {
        parameters: {
            query: {
                /** @description Delay before each batch the projector applies, in ms; 0 switches the slowdown off. */
                delayMs: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The slowdown now in force */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SlowdownState"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
        };
    };
    read_model_status: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description `orders`, `customer-summary` or `daily-sales` */
                projection: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Generations and progress */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReadModelStatus"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            503: components["responses"]["Unavailable"];
        };
    };
    rebuild: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description `orders`, `customer-summary` or `daily-sales` */
                projection: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Started; progress at `Location` */
            202: {
                headers: {
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RebuildStarted"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
            503: components["responses"]["Unavailable"];
        };
    };
    rollback: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description `orders`, `customer-summary` or `daily-sales` */
                projection: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Started: the generation is caught up, then made active; progress at `Location` (`rejoining` until it is active) */
            202: {
                headers: {
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RebuildStarted"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            409: components["responses"]["Conflict"];
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
    status: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Position, freshness, waiting reads, checks */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ServiceStatus"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            503: components["responses"]["Unavailable"];
        };
    };
    customer_summary: {
        parameters: {
            query?: {
                /** @description Wait until every event up to this position (the `position` a command answered) is applied. */
                minPosition?: number;
                /** @description How long to wait for `minPosition`, in ms (default 2000). */
                waitMs?: number;
            };
            header?: never;
            path: {
                customerId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The summary */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SummaryRead"];
                };
            };
            /** @description The read model is not at `minPosition` within `waitMs`: the summary so far */
            202: {
                headers: {
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SummaryRead"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    daily_dashboard: {
        parameters: {
            query: {
                /** @description The first day, `YYYY-MM-DD` (UTC). */
                from: string;
                /** @description The last day, `YYYY-MM-DD` (UTC), at most 365 days after `from`. */
                to: string;
                /** @description Wait until every event up to this position (the `position` a command answered) is applied. */
                minPosition?: number;
                /** @description How long to wait for `minPosition`, in ms (default 2000). */
                waitMs?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The days of the range with any activity, and its totals */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DashboardRead"];
                };
            };
            /** @description The read model is not at `minPosition` within `waitMs`: the figures so far */
            202: {
                headers: {
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DashboardRead"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    list_orders: {
        parameters: {
            query?: {
                /** @description Only this customer's orders (a customer token: its own, whether it says so or not). */
                customerId?: string;
                /** @description Only orders in this status. */
                status?: components["schemas"]["OrderStatus"];
                /** @description Views per page (default 20). */
                limit?: number;
                /** @description The `nextCursor` of the previous page. */
                cursor?: string;
                /** @description Wait until every event up to this position (the `position` a command answered) is applied. */
                minPosition?: number;
                /** @description How long to wait for `minPosition`, in ms (default 2000). */
                waitMs?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ListPage"];
                };
            };
            /** @description The read model is not at `minPosition` within `waitMs` */
            202: {
                headers: {
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ListPage"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    get_order: {
        parameters: {
            query?: {
                /** @description Wait until the view is at least at this version (the `sequenceId` a command answered). */
                minVersion?: number;
                /** @description How long to wait for `minVersion`, in ms (default 2000). */
                waitMs?: number;
            };
            header?: never;
            path: {
                /** @description The order id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The view, at `minVersion` or later */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ViewRead"];
                };
            };
            /** @description Not at `minVersion` within `waitMs`; retry after `Retry-After` */
            202: {
                headers: {
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ViewProcessing"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["TooManyRequests"];
            503: components["responses"]["Unavailable"];
        };
    };
    stream_order: {
        parameters: {
            query?: {
                /** @description The first version to send (default 1). */
                minVersion?: number;
            };
            header?: never;
            path: {
                /** @description The order id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description An event stream */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": string;
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
            429: components["responses"]["TooManyRequests"];
        };
    };
    stream_ticket: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The order id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The ticket and the stream's URL */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StreamTicket"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthenticated"];
        };
    };
}
