//! What each component serves, and its default port. The service crates fill
//! in their gRPC services as they land; the platform parts (health,
//! reflection, metrics, graceful shutdown) are already real for all four.

use platform::{Server, Settings};

/// A runnable part of meshwork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Gateway,
    Users,
    Products,
    Orders,
}

impl Component {
    pub const ALL: [Component; 4] = [Self::Gateway, Self::Users, Self::Products, Self::Orders];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Users => "users",
            Self::Products => "products",
            Self::Orders => "orders",
        }
    }

    /// The template's ports: gateway 8000, users 8001, products 8002, orders 8003.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Gateway => 8000,
            Self::Users => 8001,
            Self::Products => 8002,
            Self::Orders => 8003,
        }
    }

    /// What the component serves besides the platform's endpoints.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Gateway => "REST/JSON, gRPC and gRPC-Web entry point",
            Self::Users => "gRPC shop.users.v1.UserService",
            Self::Products => "gRPC shop.products.v1.ProductService",
            Self::Orders => "gRPC shop.orders.v1.OrderService",
        }
    }

    /// The component's server, ready to serve on a listener.
    pub fn server(self, settings: &Settings) -> Server {
        Server::new(self.name()).with_settings(settings).descriptor_set(contract::FILE_DESCRIPTOR_SET)
    }
}
