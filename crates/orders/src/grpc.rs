//! The gRPC adapter: `shop.orders.v1.OrderService` over [`Orders`].

use contract::orders::order_service_server::{OrderService, OrderServiceServer};
use contract::orders::{
    CancelOrderRequest, CancelOrderResponse, CreateOrderRequest, CreateOrderResponse, DeliverOrderRequest,
    DeliverOrderResponse, GetOrderRequest, GetOrderResponse, ListOrdersRequest, ListOrdersResponse,
    ListUserOrdersRequest, ListUserOrdersResponse, PayOrderRequest, PayOrderResponse, ShipOrderRequest,
    ShipOrderResponse,
};
use platform::access::Caller;
use platform::validation::violation;
use tonic::{Request, Response, Status};

use crate::domain::{Order, OrderStatus};
use crate::service::{NewOrder, Orders};

/// The request metadata that carries an idempotency key when the request
/// message does not.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

pub struct OrdersApi {
    orders: Orders,
}

impl OrdersApi {
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }

    pub fn into_server(self) -> OrderServiceServer<Self> {
        OrderServiceServer::new(self).max_decoding_message_size(platform::server::MAX_REQUEST_MESSAGE_BYTES)
    }
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

pub(crate) fn status_to_proto(status: OrderStatus) -> contract::orders::OrderStatus {
    use contract::orders::OrderStatus as Proto;
    match status {
        OrderStatus::Pending => Proto::Pending,
        OrderStatus::Paid => Proto::Paid,
        OrderStatus::Shipped => Proto::Shipped,
        OrderStatus::Delivered => Proto::Delivered,
        OrderStatus::Cancelled => Proto::Cancelled,
    }
}

fn status_from_proto(raw: i32) -> Result<Option<OrderStatus>, Status> {
    use contract::orders::OrderStatus as Proto;
    match Proto::try_from(raw) {
        Ok(Proto::Unspecified) => Ok(None),
        Ok(Proto::Pending) => Ok(Some(OrderStatus::Pending)),
        Ok(Proto::Paid) => Ok(Some(OrderStatus::Paid)),
        Ok(Proto::Shipped) => Ok(Some(OrderStatus::Shipped)),
        Ok(Proto::Delivered) => Ok(Some(OrderStatus::Delivered)),
        Ok(Proto::Cancelled) => Ok(Some(OrderStatus::Cancelled)),
        Err(_) => Err(violation("status", format!("{raw} is not an order status")).into_status()),
    }
}

fn to_proto(order: Order) -> contract::orders::Order {
    let total = contract::money::to_major(order.total_minor());
    contract::orders::Order {
        id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        status: status_to_proto(order.status) as i32,
        total,
        currency: order.currency.to_string(),
        created_at: Some(timestamp(order.created_at)),
        updated_at: Some(timestamp(order.updated_at)),
        items: order
            .items
            .into_iter()
            .map(|item| contract::orders::OrderItem {
                line_total: contract::money::to_major(item.line_total_minor()),
                unit_price: contract::money::to_major(item.unit_price_minor),
                product_id: item.product_id,
                product_name: item.product_name,
                quantity: item.quantity,
            })
            .collect(),
    }
}

fn orders_to_proto(orders: Vec<Order>) -> Vec<contract::orders::Order> {
    orders.into_iter().map(to_proto).collect()
}

#[tonic::async_trait]
impl OrderService for OrdersApi {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<CreateOrderResponse>, Status> {
        let header_key =
            request.metadata().get(IDEMPOTENCY_KEY_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let input = NewOrder {
            caller,
            user_id: r.user_id,
            product_id: r.product_id,
            quantity: r.quantity,
            items: r.items.into_iter().map(|item| (item.product_id, item.quantity)).collect(),
            idempotency_key: Some(r.idempotency_key).filter(|key| !key.is_empty()).or(header_key),
        };
        let order = self.orders.create(input).await?;
        Ok(Response::new(CreateOrderResponse { order: Some(to_proto(order)) }))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Result<Response<GetOrderResponse>, Status> {
        let caller = Caller::of(&request);
        let order = self.orders.get(&request.into_inner().id, &caller).await?;
        Ok(Response::new(GetOrderResponse { order: Some(to_proto(order)) }))
    }

    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Result<Response<ListOrdersResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let status = status_from_proto(r.status)?;
        let (orders, next_page_token) = self.orders.list(None, status, r.page_size, &r.page_token, &caller).await?;
        Ok(Response::new(ListOrdersResponse { orders: orders_to_proto(orders), next_page_token }))
    }

    async fn list_user_orders(
        &self,
        request: Request<ListUserOrdersRequest>,
    ) -> Result<Response<ListUserOrdersResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let (orders, next_page_token) =
            self.orders.list(Some(&r.user_id), None, r.page_size, &r.page_token, &caller).await?;
        Ok(Response::new(ListUserOrdersResponse { orders: orders_to_proto(orders), next_page_token }))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderRequest>,
    ) -> Result<Response<CancelOrderResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let order = self.orders.cancel(&r.id, &r.reason, &caller).await?;
        Ok(Response::new(CancelOrderResponse { order: Some(to_proto(order)) }))
    }

    async fn pay_order(&self, request: Request<PayOrderRequest>) -> Result<Response<PayOrderResponse>, Status> {
        let caller = Caller::of(&request);
        let order = self.orders.pay(&request.into_inner().id, &caller).await?;
        Ok(Response::new(PayOrderResponse { order: Some(to_proto(order)) }))
    }

    async fn ship_order(&self, request: Request<ShipOrderRequest>) -> Result<Response<ShipOrderResponse>, Status> {
        let caller = Caller::of(&request);
        let order = self.orders.ship(&request.into_inner().id, &caller).await?;
        Ok(Response::new(ShipOrderResponse { order: Some(to_proto(order)) }))
    }

    async fn deliver_order(
        &self,
        request: Request<DeliverOrderRequest>,
    ) -> Result<Response<DeliverOrderResponse>, Status> {
        let caller = Caller::of(&request);
        let order = self.orders.deliver(&request.into_inner().id, &caller).await?;
        Ok(Response::new(DeliverOrderResponse { order: Some(to_proto(order)) }))
    }
}
