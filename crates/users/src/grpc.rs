//! The gRPC adapter: `shop.users.v1.UserService` over [`Users`]. Only
//! translation lives here: proto in, domain call, proto or status out.

use contract::users::user_service_server::{UserService, UserServiceServer};
use contract::users::{
    CreateUserRequest, CreateUserResponse, DeleteUserRequest, DeleteUserResponse, GetJwksRequest, GetJwksResponse,
    GetUserRequest, GetUserResponse, GrantRoleRequest, GrantRoleResponse, JsonWebKey, ListUsersRequest,
    ListUsersResponse, LoginRequest, LoginResponse, RevokeRoleRequest, RevokeRoleResponse, UpdateUserRequest,
    UpdateUserResponse,
};
use platform::access::Caller;
use tonic::{Request, Response, Status};

use crate::domain::User;
use crate::service::{NewUser, UserChanges, Users};
use crate::tokens::PublicJwk;

pub struct UsersApi {
    users: Users,
}

impl UsersApi {
    pub fn new(users: Users) -> Self {
        Self { users }
    }

    pub fn into_server(self) -> UserServiceServer<Self> {
        UserServiceServer::new(self).max_decoding_message_size(platform::server::MAX_REQUEST_MESSAGE_BYTES)
    }
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

fn to_proto(user: User) -> contract::users::User {
    contract::users::User {
        id: user.id.to_string(),
        email: user.email.as_str().to_owned(),
        name: user.name.as_str().to_owned(),
        roles: user.roles.names(),
        created_at: Some(timestamp(user.created_at)),
        updated_at: Some(timestamp(user.updated_at)),
    }
}

pub fn jwk_to_proto(key: PublicJwk) -> JsonWebKey {
    JsonWebKey {
        kty: PublicJwk::KTY.to_owned(),
        kid: key.kid,
        r#use: PublicJwk::USE.to_owned(),
        alg: PublicJwk::ALG.to_owned(),
        crv: Some(PublicJwk::CRV.to_owned()),
        x: Some(key.x),
        n: None,
        e: None,
    }
}

#[tonic::async_trait]
impl UserService for UsersApi {
    async fn create_user(&self, request: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        let request = request.into_inner();
        let input = NewUser { email: request.email, name: request.name, password: request.password };
        let user = self.users.create(input).await?;
        Ok(Response::new(CreateUserResponse { user: Some(to_proto(user)) }))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<GetUserResponse>, Status> {
        let caller = Caller::of(&request);
        let user = self.users.get(&request.into_inner().id, &caller).await?;
        Ok(Response::new(GetUserResponse { user: Some(to_proto(user)) }))
    }

    async fn list_users(&self, request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let (users, next_page_token) = self.users.list(request.page_size, &request.page_token, &caller).await?;
        Ok(Response::new(ListUsersResponse { users: users.into_iter().map(to_proto).collect(), next_page_token }))
    }

    async fn update_user(&self, request: Request<UpdateUserRequest>) -> Result<Response<UpdateUserResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let changes = UserChanges { email: request.email, name: request.name, password: request.password };
        let user = self.users.update(&request.id, changes, &caller).await?;
        Ok(Response::new(UpdateUserResponse { user: Some(to_proto(user)) }))
    }

    async fn delete_user(&self, request: Request<DeleteUserRequest>) -> Result<Response<DeleteUserResponse>, Status> {
        let caller = Caller::of(&request);
        self.users.delete(&request.into_inner().id, &caller).await?;
        Ok(Response::new(DeleteUserResponse {}))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let request = request.into_inner();
        let (token, user) = self.users.login(&request.email, &request.password).await?;
        Ok(Response::new(LoginResponse {
            access_token: token.token,
            token_type: "Bearer".to_owned(),
            expires_in: i32::try_from(token.expires_in.as_secs()).unwrap_or(i32::MAX),
            user: Some(to_proto(user)),
        }))
    }

    async fn grant_role(&self, request: Request<GrantRoleRequest>) -> Result<Response<GrantRoleResponse>, Status> {
        let request = request.into_inner();
        let user = self.users.grant_role(&request.id, &request.role).await?;
        Ok(Response::new(GrantRoleResponse { user: Some(to_proto(user)) }))
    }

    async fn revoke_role(&self, request: Request<RevokeRoleRequest>) -> Result<Response<RevokeRoleResponse>, Status> {
        let request = request.into_inner();
        let user = self.users.revoke_role(&request.id, &request.role).await?;
        Ok(Response::new(RevokeRoleResponse { user: Some(to_proto(user)) }))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(GetJwksResponse { keys: self.users.jwks().into_iter().map(jwk_to_proto).collect() }))
    }
}
