/*
 * tls_resume: does this libtls let a client resume a TLS session?
 *
 *	tls_resume [-2] [-k] -c cert -f key -p port [-n connections]
 *
 * A libtls server on 127.0.0.1:port configured as tlsproc would be for
 * resumption (a session id context and tls_config_set_session_lifetime),
 * with -k also a fixed ticket key (tls_config_add_ticket_key), and with
 * -2 TLS 1.2 only.  It takes n connections (default 2), completes each
 * handshake, writes one line and closes, printing per connection
 *
 *	conn N version VERSION resumed 0|1
 *
 * A client that saves its session from the first connection and offers
 * it on the second (openssl s_client -sess_out, then -sess_in) shows
 * whether the library issued anything it could resume with: a ticket or
 * a session id in the saved session, and "resumed 1" here.  Run by
 * bench/tls_resume.py.  Exits 1 if the server cannot be set up.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

static struct tls *
server_setup(const char *cert, const char *key, int tls12, int fixed_key)
{
	unsigned char sid[32], ticket_key[TLS_TICKET_KEY_SIZE];
	struct tls_config *cfg;
	struct tls *srv;

	if ((cfg = tls_config_new()) == NULL || (srv = tls_server()) == NULL)
		errx(1, "libtls: out of memory");
	if (tls_config_set_keypair_file(cfg, cert, key) == -1)
		errx(1, "keypair: %s", tls_config_error(cfg));
	if (tls12 && tls_config_set_protocols(cfg, TLS_PROTOCOL_TLSv1_2) == -1)
		errx(1, "protocols: %s", tls_config_error(cfg));
	arc4random_buf(sid, sizeof(sid));
	if (tls_config_set_session_id(cfg, sid, sizeof(sid)) == -1 ||
	    tls_config_set_session_lifetime(cfg, 300) == -1)
		errx(1, "session: %s", tls_config_error(cfg));
	if (fixed_key) {
		arc4random_buf(ticket_key, sizeof(ticket_key));
		if (tls_config_add_ticket_key(cfg, 1, ticket_key,
			sizeof(ticket_key)) == -1)
			errx(1, "ticket key: %s", tls_config_error(cfg));
	}
	if (tls_configure(srv, cfg) == -1)
		errx(1, "configure: %s", tls_error(srv));
	return srv;
}

static int
listen_on(int port)
{
	struct sockaddr_in sin;
	int fd, on = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 16) == -1)
		err(1, "127.0.0.1:%d", port);
	return fd;
}

int
main(int argc, char *argv[])
{
	const char *cert = NULL, *key = NULL;
	struct tls *srv, *conn;
	int ch, lfd, fd, i, port = 0, n = 2, tls12 = 0, fixed_key = 0;

	while ((ch = getopt(argc, argv, "2c:f:kn:p:")) != -1) {
		switch (ch) {
		case '2':
			tls12 = 1;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'f':
			key = optarg;
			break;
		case 'k':
			fixed_key = 1;
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'p':
			port = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (cert == NULL || key == NULL || port <= 0 || n <= 0)
		goto usage;
	srv = server_setup(cert, key, tls12, fixed_key);
	lfd = listen_on(port);
	printf("ready\n");
	fflush(stdout);
	for (i = 0; i < n; i++) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			err(1, "accept");
		if (tls_accept_socket(srv, &conn, fd) == -1)
			errx(1, "accept: %s", tls_error(srv));
		if (tls_handshake(conn) == -1)
			printf("conn %d handshake failed: %s\n", i,
			    tls_error(conn));
		else {
			printf("conn %d version %s resumed %d\n", i,
			    tls_conn_version(conn),
			    tls_conn_session_resumed(conn));
			(void)tls_write(conn, "hello\n", 6);
		}
		fflush(stdout);
		(void)tls_close(conn);
		tls_free(conn);
		close(fd);
	}
	return 0;
usage:
	fprintf(stderr,
	    "usage: tls_resume [-2] [-k] -c cert -f key -p port "
	    "[-n connections]\n");
	return 2;
}
