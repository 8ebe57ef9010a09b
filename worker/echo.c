/* echo.c: the /echo endpoint. A message is sent back with its opcode; a
 * message assembled from fragments is handed over (owned), not copied. */
#include "echo.h"

#include "conn/endpoint.h"
#include "conn/output.h"

static void echo_message(struct conn *c, unsigned opcode, uint8_t *payload, size_t len, uint8_t *owned)
{
    output_frame(c, opcode, payload, len, owned);
}

const struct endpoint echo_endpoint = {
    .path = "/echo",
    .message = echo_message,
};
