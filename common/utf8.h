/* utf8.h: incremental, fail-fast UTF-8 validation (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). The state carries a partial
 * code point across calls, so a text message can be validated fragment by
 * fragment and a bad byte is caught in the read it arrives in. */
#ifndef WSMILL_UTF8_H
#define WSMILL_UTF8_H
#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0  /* at a code point boundary */
#define UTF8_REJECT 12 /* invalid; sticky */

/* Feeds n bytes; returns the new state: UTF8_ACCEPT, UTF8_REJECT, or
 * another value meaning "inside a code point, need more". */
uint32_t utf8_feed(uint32_t state, const uint8_t *p, size_t n);

/* 1 if the whole buffer is valid UTF-8. */
int utf8_valid(const uint8_t *p, size_t n);

#endif
