// The template's scenario through the gateway, over gRPC and over REST:
// register, log in, create a product, place an order, list the user's
// orders, cancel it; and one bad request, to show the error details.
//
//   node dist/scenario.js http://HOST:PORT grpc|connect-{json,proto}-{h1,h2}|rest EMAIL
//
// connect-json-h1 speaks the Connect protocol with JSON messages over
// HTTP/1.1, connect-proto-h2 with binary ones over HTTP/2, and so on.
//
// EMAIL must be allowed to create products (USERS_ADMINS).

import { createClient } from "@connectrpc/connect";
import { strict as assert } from "node:assert";
import { randomUUID } from "node:crypto";

import { OrderService, OrderStatus } from "./gen/shop/orders/v1/orders_pb";
import { ProductService } from "./gen/shop/products/v1/products_pb";
import { UserService } from "./gen/shop/users/v1/users_pb";
import type { Transport } from "@connectrpc/connect";
import { Rest, connectTransport, grpcTransport, meshworkError } from "./meshwork";

const PASSWORD = "correct horse battery";

async function overRpc(protocol: string, baseUrl: string, email: string): Promise<void> {
  const transport = (token?: string): Transport => {
    if (protocol === "grpc") return grpcTransport(baseUrl, token);
    const [, encoding, version] = protocol.split("-");
    return connectTransport(baseUrl, token, { httpVersion: version === "h1" ? "1.1" : "2", binary: encoding === "proto" });
  };
  const users = createClient(UserService, transport());
  const { user } = await users.createUser({ email, name: "John Doe", password: PASSWORD });
  const { accessToken } = await users.login({ email, password: PASSWORD });
  const signedIn = transport(accessToken);
  const products = createClient(ProductService, signedIn);
  const orders = createClient(OrderService, signedIn);

  const productId = `prod-${randomUUID().slice(0, 8)}`;
  const { product } = await products.createProduct({ id: productId, name: "Widget", price: 0.1 + 0.2, stock: 100, currency: "EUR" });
  assert.deepEqual([product?.price, product?.currency], [0.3, "EUR"]);
  const userId = user?.id ?? "";
  const { order } = await orders.createOrder({ userId, productId, quantity: 2 });
  assert.deepEqual([order?.total, order?.currency, order?.status], [0.6, "EUR", OrderStatus.PENDING]);
  const listed = await orders.listUserOrders({ userId });
  assert.deepEqual(listed.orders.map((o) => o.id), [order?.id]);
  const cancelled = await orders.cancelOrder({ id: order?.id, reason: "changed my mind" });
  assert.equal(cancelled.order?.status, OrderStatus.CANCELLED);

  await refused(() => products.createProduct({ name: "", price: 1.005, stock: 1 }));
  console.log(`typescript, ${protocol}: user ${userId}, order ${order?.id} placed and cancelled, bad input refused field by field`);
}

interface User { id: string }
interface Product { price: number; currency: string }
interface Order { id: string; total: number; status: string }

async function overRest(baseUrl: string, email: string): Promise<void> {
  const anonymous = new Rest(baseUrl);
  const user = await anonymous.call<User>("POST", "/users", { email, name: "John Doe", password: PASSWORD });
  const login = await anonymous.call<{ accessToken: string }>("POST", "/users/login", { email, password: PASSWORD });
  const rest = new Rest(baseUrl, login.accessToken);

  const productId = `prod-${randomUUID().slice(0, 8)}`;
  const product = await rest.call<Product>("POST", "/products", { id: productId, name: "Widget", price: 29.99, stock: 100 });
  assert.deepEqual([product.price, product.currency], [29.99, "USD"]);
  const order = await rest.call<Order>("POST", "/orders", { userId: user.id, productId, quantity: 2 });
  assert.deepEqual([order.total, order.status], [59.98, "ORDER_STATUS_PENDING"]);
  const listed = await rest.call<{ orders: Order[] }>("GET", `/orders/user/${user.id}`);
  assert.deepEqual(listed.orders.map((o) => o.id), [order.id]);
  const cancelled = await rest.call<Order>("POST", `/orders/${order.id}:cancel`, { reason: "changed my mind" });
  assert.equal(cancelled.status, "ORDER_STATUS_CANCELLED");

  await refused(() => rest.call("POST", "/products", { name: "", price: 1.005, stock: 1 }));
  console.log(`typescript, rest: user ${user.id}, order ${order.id} placed and cancelled, bad input refused field by field`);
}

/** The call fails as INVALID_ARGUMENT naming exactly the bad fields. */
async function refused(call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (caught) {
    const error = meshworkError(caught);
    assert.equal(error.code, "INVALID_ARGUMENT", error.message);
    assert.deepEqual(Object.keys(error.fieldViolations).sort(), ["name", "price"]);
    return;
  }
  assert.fail("a bad product was accepted");
}

const [baseUrl, protocol, email] = process.argv.slice(2);
(protocol === "rest" ? overRest(baseUrl, email) : overRpc(protocol, baseUrl, email)).catch((error) => {
  console.error(error);
  process.exit(1);
});
