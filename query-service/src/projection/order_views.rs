//! The order views projection: what an event makes of its order's view, the mapping live projection, replay and
//! checks use.

use shared_events::{OrderEvent, ViewLine};

use super::projections::{bson_date as date, Projection};
use crate::store::models::{ReadModel, ORDER_VIEWS};
use crate::store::{list_key, Guarded, StoredView};

/// One view per order: the order's whole state as its newest event tells it.
#[derive(Debug)]
pub struct OrderViews;

impl Projection for OrderViews {
    fn model(&self) -> &'static ReadModel {
        &ORDER_VIEWS
    }

    fn apply(&self, event: &OrderEvent) -> Result<Vec<Guarded>, String> {
        let view = StoredView::from_event(event).guarded().map_err(|err| err.to_string())?;
        Ok(vec![view])
    }

    fn announces_views(&self) -> bool {
        true
    }
}

impl StoredView {
    /// The view an event describes: its payload is the order's whole state after the change.
    pub fn from_event(event: &OrderEvent) -> Self {
        let state = &event.state;
        Self {
            id: event.order_id.to_string(),
            customer_id: state.customer.id.clone(),
            customer_segment: Some(state.customer.segment.clone()),
            status: state.status.as_str().to_owned(),
            currency: state.currency.clone(),
            items: state
                .items
                .iter()
                .map(|line| ViewLine {
                    sku: line.sku.clone(),
                    name: line.name.clone(),
                    quantity: i64::from(line.quantity),
                    unit_price: line.unit_price.to_string(),
                    line_total: line.line_total.to_string(),
                })
                .collect(),
            item_count: state.items.iter().map(|line| i64::from(line.quantity)).sum(),
            total: state.total.to_string(),
            placed_at: date(state.placed_at),
            updated_at: date(state.updated_at),
            version: event.version,
            last_sequence: event.sequence,
            cancel_reason: state.cancel_reason.clone(),
            list_key: list_key(date(state.placed_at), event.order_id),
        }
    }
}
