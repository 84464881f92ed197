-- docker-compose: the orders database beside the users one (POSTGRES_DB).
CREATE DATABASE orders;
