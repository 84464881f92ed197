//! The gRPC adapter: `shop.products.v1.ProductService` over [`Products`].

use contract::products::product_service_server::{ProductService, ProductServiceServer};
use contract::products::{
    AdjustStockRequest, AdjustStockResponse, CreateProductRequest, CreateProductResponse, DeleteProductRequest,
    DeleteProductResponse, GetProductRequest, GetProductResponse, ListProductsRequest, ListProductsResponse,
    ReleaseStockRequest, ReleaseStockResponse, ReserveStockRequest, ReserveStockResponse, ReservedItem,
    SearchProductsRequest, SearchProductsResponse, UpdateProductRequest, UpdateProductResponse,
};
use tonic::{Request, Response, Status};

use crate::domain::Product;
use crate::service::{ChangesInput, FilterInput, NewProduct, Products};

pub struct ProductsApi {
    products: Products,
}

impl ProductsApi {
    pub fn new(products: Products) -> Self {
        Self { products }
    }

    pub fn into_server(self) -> ProductServiceServer<Self> {
        ProductServiceServer::new(self).max_decoding_message_size(platform::server::MAX_REQUEST_MESSAGE_BYTES)
    }
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

fn to_proto(product: Product) -> contract::products::Product {
    contract::products::Product {
        id: product.id.as_str().to_owned(),
        name: product.name.as_str().to_owned(),
        description: product.description.as_str().to_owned(),
        price: product.price.to_decimal(),
        currency: product.currency.to_string(),
        stock: product.stock,
        units_sold: product.units_sold,
        created_at: Some(timestamp(product.created_at)),
        updated_at: Some(timestamp(product.updated_at)),
    }
}

fn filter(filter: Option<contract::products::ProductFilter>) -> FilterInput {
    let filter = filter.unwrap_or_default();
    FilterInput {
        min_price: filter.min_price,
        max_price: filter.max_price,
        in_stock: filter.in_stock,
        currency: filter.currency,
    }
}

#[tonic::async_trait]
impl ProductService for ProductsApi {
    async fn create_product(
        &self,
        request: Request<CreateProductRequest>,
    ) -> Result<Response<CreateProductResponse>, Status> {
        let r = request.into_inner();
        let input = NewProduct {
            id: r.id,
            name: r.name,
            description: r.description,
            price: r.price,
            stock: r.stock,
            currency: r.currency,
        };
        let product = self.products.create(input).await?;
        Ok(Response::new(CreateProductResponse { product: Some(to_proto(product)) }))
    }

    async fn get_product(&self, request: Request<GetProductRequest>) -> Result<Response<GetProductResponse>, Status> {
        let product = self.products.get(&request.into_inner().id).await?;
        Ok(Response::new(GetProductResponse { product: Some(to_proto(product)) }))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let r = request.into_inner();
        let (products, next_page_token) = self.products.list(r.page_size, &r.page_token, filter(r.filter)).await?;
        Ok(Response::new(ListProductsResponse {
            products: products.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn search_products(
        &self,
        request: Request<SearchProductsRequest>,
    ) -> Result<Response<SearchProductsResponse>, Status> {
        let r = request.into_inner();
        let (products, next_page_token) =
            self.products.search(&r.q, r.page_size, &r.page_token, filter(r.filter)).await?;
        Ok(Response::new(SearchProductsResponse {
            products: products.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_product(
        &self,
        request: Request<UpdateProductRequest>,
    ) -> Result<Response<UpdateProductResponse>, Status> {
        let r = request.into_inner();
        let changes = ChangesInput { name: r.name, description: r.description, price: r.price, stock: r.stock };
        let product = self.products.update(&r.id, changes).await?;
        Ok(Response::new(UpdateProductResponse { product: Some(to_proto(product)) }))
    }

    async fn delete_product(
        &self,
        request: Request<DeleteProductRequest>,
    ) -> Result<Response<DeleteProductResponse>, Status> {
        self.products.delete(&request.into_inner().id).await?;
        Ok(Response::new(DeleteProductResponse {}))
    }

    async fn adjust_stock(
        &self,
        request: Request<AdjustStockRequest>,
    ) -> Result<Response<AdjustStockResponse>, Status> {
        let r = request.into_inner();
        let product = self.products.adjust_stock(&r.id, r.delta).await?;
        Ok(Response::new(AdjustStockResponse { product: Some(to_proto(product)) }))
    }

    async fn reserve_stock(
        &self,
        request: Request<ReserveStockRequest>,
    ) -> Result<Response<ReserveStockResponse>, Status> {
        let r = request.into_inner();
        let items: Vec<(String, i32)> = r.items.into_iter().map(|item| (item.product_id, item.quantity)).collect();
        let reservation = self.products.reserve(&r.reservation_id, &items).await?;
        let held_for = (reservation.expires_at - crate::domain::now()).max(chrono::TimeDelta::zero());
        Ok(Response::new(ReserveStockResponse {
            held_for: held_for.to_std().ok().and_then(|held_for| prost_types::Duration::try_from(held_for).ok()),
            reservation_id: reservation.id.as_str().to_owned(),
            items: reservation
                .items
                .into_iter()
                .map(|item| {
                    // Still filled for an orders service that predates unit_price_minor.
                    #[allow(deprecated)]
                    ReservedItem {
                        product_id: item.product_id.as_str().to_owned(),
                        quantity: item.quantity,
                        unit_price: item.unit_price.to_decimal(),
                        unit_price_minor: item.unit_price.minor(),
                        currency: item.currency.to_string(),
                        product_name: item.product_name,
                    }
                })
                .collect(),
        }))
    }

    async fn release_stock(
        &self,
        request: Request<ReleaseStockRequest>,
    ) -> Result<Response<ReleaseStockResponse>, Status> {
        let released = self.products.release(&request.into_inner().reservation_id).await?;
        Ok(Response::new(ReleaseStockResponse { released }))
    }
}
