"""The test proxy reaches the server a URL names, including the embedded Postgres, which listens
only on a Unix socket (its URL carries the socket directory in ``?host=``, no host, no port)."""

from sqlalchemy.engine import make_url

from tests.proxy import proxy_for, through

EMBEDDED = "postgresql://postgres:@/relai_test?host=%2Ftmp%2Frun%2Fpostgres"


def test_a_socket_url_is_proxied_to_its_socket_not_to_localhost() -> None:
    proxy = proxy_for(EMBEDDED, 5432)
    assert proxy.unix_path == "/tmp/run/postgres/.s.PGSQL.5432"
    assert proxy.target_host is None


def test_a_tcp_url_is_proxied_to_its_address() -> None:
    proxy = proxy_for("postgresql://postgres@db.internal:6543/x", 5432)
    assert (proxy.target_host, proxy.target_port, proxy.unix_path) == ("db.internal", 6543, None)
    redis = proxy_for("redis://127.0.0.1/0", 6379)
    assert (redis.target_host, redis.target_port) == ("127.0.0.1", 6379)


def test_the_proxied_url_goes_to_the_proxy_and_keeps_the_rest() -> None:
    proxy = proxy_for(EMBEDDED + "&sslmode=disable", 5432)
    proxy.port = 40123
    url = make_url(through(EMBEDDED + "&sslmode=disable", proxy))
    assert (url.host, url.port, url.database, url.username) == (
        "127.0.0.1",
        40123,
        "relai_test",
        "postgres",
    )
    assert dict(url.query) == {"sslmode": "disable"}
