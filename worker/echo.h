/* echo.h: the /echo endpoint: every data message comes back as it came. */
#ifndef WSMILL_ECHO_H
#define WSMILL_ECHO_H

struct endpoint;
extern const struct endpoint echo_endpoint;

#endif
