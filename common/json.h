/* json.h: JSON from outside input (JWT claims, client messages), read with
 * jansson (libjansson) in one strict way. jansson's own API is json_*; the
 * two functions here are ours, and every reader of untrusted JSON starts
 * with json_read_object, so all of them refuse the same things. Why jansson
 * and not cJSON: docs/internals.md, section JSON. */
#ifndef WSMILL_JSON_H
#define WSMILL_JSON_H
#include <jansson.h>
#include <stddef.h>

/* Parses text (n bytes, need not be NUL-terminated) as exactly one JSON
 * object (RFC 8259) with optional whitespace around it. Refused besides bad
 * grammar: invalid UTF-8 (overlong forms and encoded surrogates included),
 * a lone surrogate escape or \u0000 in a string, a name repeated within any
 * one object, an integer outside int64_t or a real outside double's range,
 * anything but whitespace after the object, and nesting deeper than
 * max_depth (the object itself is level 1; jansson gives up at 2048 levels
 * while parsing, so its recursion stays bounded). jansson allocates the
 * tree; an allocation failure reads as refused. Returns a new reference
 * (json_decref it), or NULL with *why filled when why is not NULL. */
json_t *json_read_object(const void *text, size_t n, int max_depth, json_error_t *why);

/* The text of member `index` (0 is the first in the text, which is also
 * jansson's iteration order) of the object in text (n bytes), trimmed of
 * whitespace: for a caller that needs a number's exact spelling, which
 * jansson keeps only as an int64 or a double. text must be one that
 * json_read_object accepted. Sets *v and *vn and returns 0, or returns -1
 * when the object has no such member. */
int json_member_text(const char *text, size_t n, size_t index, const char **v, size_t *vn);

#endif
