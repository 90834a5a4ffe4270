/* hello: the smallest complete libpartisan-client program.
 *
 * Registers a name on the local daemon, asks the daemon which node it is,
 * sends itself a message through the daemon and prints what comes back.
 *
 *   make && ./hello            (socket: $PARTISAN_SOCKET or the default)
 *   ./hello /path/to/partisand.sock
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <partisan.h>

static int fail(partisan_client *c, const char *what, int rc)
{
    fprintf(stderr, "hello: %s: %s", what, partisan_strerror(rc));
    if (c && *partisan_last_error(c))
        fprintf(stderr, " (%s)", partisan_last_error(c));
    fputc('\n', stderr);
    partisan_close(c);
    return 1;
}

int main(int argc, char **argv)
{
    const char *socket = argc > 1 ? argv[1] : NULL;   /* NULL: $PARTISAN_SOCKET or the default */
    partisan_client *c;
    int rc = partisan_connect(socket, &c);
    if (rc)
        return fail(NULL, "connect", rc);

    /* The pid keeps two copies running at once from taking the same name. */
    char name[64];
    snprintf(name, sizeof name, "hello-%ld", (long)getpid());
    if ((rc = partisan_register(c, name, 5000)))
        return fail(c, "register", rc);

    /* A message is addressed to (node, name): ask which node we are on. */
    struct partisan_status *st;
    if ((rc = partisan_status(c, &st, 5000)))
        return fail(c, "status", rc);

    const char *text = "hello, partisan";
    if ((rc = partisan_send_sync(c, st->node, name, text, strlen(text), 5000)))
        return fail(c, "send", rc);

    struct partisan_message *m;
    if ((rc = partisan_recv(c, &m, 5000)))
        return fail(c, "recv", rc);
    printf("%s@%s got from %s: %.*s\n", m->name, st->node, m->from_node, (int)m->len,
           (const char *)m->payload);

    partisan_message_free(m);
    partisan_status_free(st);
    partisan_close(c);   /* the daemon releases the name */
    return 0;
}
