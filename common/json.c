/* json.c: strict JSON objects over jansson (contract in json.h). */
#include "json.h"

#include <stdio.h>

/* Fills *why the way jansson does: message, then the code in the last byte. */
static void refuse(json_error_t *why, enum json_error_code code, const char *msg)
{
    if (!why)
        return;
    snprintf(why->text, sizeof(why->text) - 1, "%s", msg);
    why->text[sizeof(why->text) - 1] = (char)code;
    why->source[0] = '\0';
    why->line = why->column = why->position = -1;
}

/* 1 when v holds arrays or objects more than `left` levels deep (v itself
 * counting as one). Never recurses further than `left` calls. */
static int too_deep(json_t *v, int left)
{
    size_t i;
    const char *name;
    json_t *x;
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (left <= 0)
        return 1;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (too_deep(x, left - 1))
                return 1;
        }
        return 0;
    }
    json_object_foreach(v, name, x)
    {
        if (too_deep(x, left - 1))
            return 1;
    }
    return 0;
}

json_t *json_read_object(const void *text, size_t n, int max_depth, json_error_t *why)
{
    /* Without JSON_DECODE_ANY only an object or array is accepted at the
     * top; without JSON_DISABLE_EOF_CHECK nothing may follow it;
     * JSON_ALLOW_NUL stays off, so \u0000 is refused. */
    json_t *v = json_loadb(text, n, JSON_REJECT_DUPLICATES, why);
    if (!v)
        return NULL;
    if (!json_is_object(v)) {
        refuse(why, json_error_wrong_type, "not a JSON object");
    } else if (too_deep(v, max_depth)) {
        refuse(why, json_error_stack_overflow, "nested too deep");
    } else {
        return v;
    }
    json_decref(v);
    return NULL;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int json_member_text(const char *text, size_t n, size_t index, const char **v, size_t *vn)
{
    /* The text is valid JSON, so counting brackets outside strings finds
     * the structure: member values start after a ':' at depth 1 and end at
     * the next ',' at depth 1 or at the object's closing '}'. */
    int depth = 0, in_string = 0, found = 0;
    size_t colons = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"')
            in_string = 1;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        if (found && ((c == ',' && depth == 1) || depth == 0)) {
            size_t end = i;
            while (start < end && is_space(text[start]))
                start++;
            while (end > start && is_space(text[end - 1]))
                end--;
            *v = text + start;
            *vn = end - start;
            return 0;
        }
        if (!found && c == ':' && depth == 1 && colons++ == index) {
            found = 1;
            start = i + 1;
        }
    }
    return -1;
}
