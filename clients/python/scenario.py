"""The template's scenario through the gateway, over gRPC and over REST:
register, log in, create a product, place an order, list the user's
orders, cancel it; and one bad request, to show the error details.

    PYTHONPATH=gen/python:clients/python python clients/python/scenario.py HOST:PORT grpc|rest EMAIL

EMAIL must be allowed to create products (USERS_ADMINS), unless the gateway
trusts callers without a token (`meshwork up`).
"""

import sys
import uuid

from meshwork_client import MeshworkError, Rest, channel
from shop.orders.v1 import orders_pb2, orders_pb2_grpc
from shop.products.v1 import products_pb2, products_pb2_grpc
from shop.users.v1 import users_pb2, users_pb2_grpc

PASSWORD = "correct horse battery"


def over_grpc(address: str, email: str) -> None:
    users = users_pb2_grpc.UserServiceStub(channel(address))
    user = users.CreateUser(users_pb2.CreateUserRequest(email=email, name="John Doe", password=PASSWORD)).user
    token = users.Login(users_pb2.LoginRequest(email=email, password=PASSWORD)).access_token
    signed_in = channel(address, token)
    products = products_pb2_grpc.ProductServiceStub(signed_in)
    orders = orders_pb2_grpc.OrderServiceStub(signed_in)

    product_id = f"prod-{uuid.uuid4().hex[:8]}"
    product = products.CreateProduct(
        products_pb2.CreateProductRequest(id=product_id, name="Widget", price=0.1 + 0.2, stock=100, currency="EUR")
    ).product
    assert (product.price, product.currency) == (0.3, "EUR"), product
    order = orders.CreateOrder(orders_pb2.CreateOrderRequest(user_id=user.id, product_id=product_id, quantity=2)).order
    assert (order.total, order.currency, order.status) == (0.6, "EUR", orders_pb2.ORDER_STATUS_PENDING), order
    listed = orders.ListUserOrders(orders_pb2.ListUserOrdersRequest(user_id=user.id)).orders
    assert [o.id for o in listed] == [order.id], listed
    cancelled = orders.CancelOrder(orders_pb2.CancelOrderRequest(id=order.id, reason="changed my mind")).order
    assert cancelled.status == orders_pb2.ORDER_STATUS_CANCELLED, cancelled

    try:
        products.CreateProduct(products_pb2.CreateProductRequest(name="", price=1.005, stock=1))
        raise AssertionError("a bad product was accepted")
    except MeshworkError as error:
        assert error.code == "INVALID_ARGUMENT" and set(error.field_violations) == {"name", "price"}, error
    print(f"python, grpc: user {user.id}, order {order.id} placed and cancelled, bad input refused field by field")


def over_rest(address: str, email: str) -> None:
    rest = Rest(f"http://{address}")
    user = rest.call("POST", "/users", {"email": email, "name": "John Doe", "password": PASSWORD})
    login = rest.call("POST", "/users/login", {"email": email, "password": PASSWORD})
    rest = Rest(f"http://{address}", login["accessToken"])

    product_id = f"prod-{uuid.uuid4().hex[:8]}"
    product = rest.call("POST", "/products", {"id": product_id, "name": "Widget", "price": 29.99, "stock": 100})
    assert (product["price"], product["currency"]) == (29.99, "USD"), product
    order = rest.call("POST", "/orders", {"userId": user["id"], "productId": product_id, "quantity": 2})
    assert (order["total"], order["status"]) == (59.98, "ORDER_STATUS_PENDING"), order
    listed = rest.call("GET", f"/orders/user/{user['id']}")["orders"]
    assert [o["id"] for o in listed] == [order["id"]], listed
    cancelled = rest.call("POST", f"/orders/{order['id']}:cancel", {"reason": "changed my mind"})
    assert cancelled["status"] == "ORDER_STATUS_CANCELLED", cancelled

    try:
        rest.call("POST", "/products", {"name": "", "price": 1.005, "stock": 1})
        raise AssertionError("a bad product was accepted")
    except MeshworkError as error:
        assert error.code == "INVALID_ARGUMENT" and set(error.field_violations) == {"name", "price"}, error
    print(f"python, rest: user {user['id']}, order {order['id']} placed and cancelled, bad input refused field by field")


if __name__ == "__main__":
    address, protocol, email = sys.argv[1], sys.argv[2], sys.argv[3]
    {"grpc": over_grpc, "rest": over_rest}[protocol](address, email)
