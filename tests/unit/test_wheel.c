/* test_wheel.c: worker/conn/wheel.c, the timing wheel, on a plain array of
 * nodes laid out like the connection table. */
#include "../../worker/conn/wheel.h"

#include <stdlib.h>

#include "tap.h"

struct node {
    char pad[40]; /* the wheel must find its link at an offset, not at 0 */
    struct wheel_link wl;
    int fired;
    uint32_t fired_at;
};

#define N 64
static struct node nodes[N];
static struct wheel wh;
static int order[N * 4], norder;

static void fire(void *ctx, uint32_t idx)
{
    (void)ctx;
    nodes[idx].fired++;
    nodes[idx].fired_at = wh.done;
    order[norder++] = (int)idx;
}

static void reset(uint32_t now)
{
    memset(nodes, 0, sizeof(nodes));
    norder = 0;
    wheel_init(&wh, nodes, sizeof(struct node), offsetof(struct node, wl), now);
}

static void refire(void *ctx, uint32_t idx)
{
    fire(ctx, idx);
    if (nodes[idx].fired < 3)
        wheel_schedule(&wh, idx, wh.done + 10); /* re-file from inside fire */
}

int main(void)
{
    reset(1000);
    wheel_schedule(&wh, 3, 1005);
    wheel_schedule(&wh, 7, 1005);
    wheel_schedule(&wh, 9, 1002);
    wheel_advance(&wh, 1004, fire, NULL);
    is_int(nodes[9].fired, 1, "a node due at 1002 fires by 1004");
    is_int(nodes[9].fired_at, 1002, "...in the slot of tick 1002");
    is_int(nodes[3].fired + nodes[7].fired, 0, "nodes due at 1005 have not fired at 1004");
    wheel_advance(&wh, 1005, fire, NULL);
    is_int(nodes[3].fired, 1, "node 3 fires at 1005");
    is_int(nodes[7].fired, 1, "node 7 fires at 1005");
    is_int(norder, 3, "each node fired exactly once");

    reset(0);
    wheel_schedule(&wh, 1, 5);
    wheel_schedule(&wh, 2, 5);
    wheel_schedule(&wh, 3, 5);
    wheel_remove(&wh, 2);
    wheel_remove(&wh, 2); /* twice: a no-op the second time */
    wheel_advance(&wh, 10, fire, NULL);
    is_int(nodes[2].fired, 0, "a removed node never fires");
    is_int(nodes[1].fired + nodes[3].fired, 2, "its neighbours in the slot still fire");

    reset(0);
    wheel_schedule(&wh, 4, 8);
    wheel_schedule(&wh, 4, 20); /* re-filing moves it */
    wheel_advance(&wh, 19, fire, NULL);
    is_int(nodes[4].fired, 0, "a re-filed node does not fire at its old tick");
    wheel_advance(&wh, 20, fire, NULL);
    is_int(nodes[4].fired, 1, "it fires at its new tick");

    reset(100);
    wheel_advance(&wh, 110, fire, NULL);
    wheel_schedule(&wh, 5, 50); /* in the past: next tick, never a processed slot */
    wheel_advance(&wh, 110, fire, NULL);
    is_int(nodes[5].fired, 0, "a past deadline does not fire before the clock moves");
    wheel_advance(&wh, 111, fire, NULL);
    is_int(nodes[5].fired, 1, "a past deadline fires at the next tick");

    reset(0);
    wheel_schedule(&wh, 6, 100000); /* beyond the horizon: clamped */
    wheel_advance(&wh, WHEEL_SLOTS - 1, fire, NULL);
    is_int(nodes[6].fired, 1, "a deadline beyond the horizon fires at the horizon (the owner re-files it)");
    ok(nodes[6].fired_at <= WHEEL_SLOTS - 1, "...within one turn of the wheel");

    reset(0);
    for (uint32_t i = 0; i < N; i++)
        wheel_schedule(&wh, i, 1 + i % 7);
    wheel_advance(&wh, 7, fire, NULL);
    int all = 1, inorder = 1;
    for (uint32_t i = 0; i < N; i++)
        all &= nodes[i].fired == 1 && nodes[i].fired_at == 1 + i % 7;
    for (int i = 1; i < norder; i++)
        inorder &= nodes[order[i - 1]].fired_at <= nodes[order[i]].fired_at;
    ok(all, "64 nodes over 7 ticks: each fires once, at its own tick");
    ok(inorder, "ticks are processed in order");

    reset(0);
    wheel_schedule(&wh, 8, 1);
    wheel_advance(&wh, 40, refire, NULL);
    is_int(nodes[8].fired, 3, "a node re-filed from inside fire fires again");
    is_int(nodes[8].fired_at, 21, "...at the tick it was re-filed for");

    reset(UINT32_MAX - 3); /* the tick counter wraps */
    wheel_schedule(&wh, 10, UINT32_MAX - 1);
    wheel_schedule(&wh, 11, 2);
    wheel_advance(&wh, 1, fire, NULL);
    is_int(nodes[10].fired, 1, "a deadline before the wrap fires");
    is_int(nodes[11].fired, 0, "a deadline after the wrap waits");
    wheel_advance(&wh, 2, fire, NULL);
    is_int(nodes[11].fired, 1, "...and fires at its tick across the wrap");
    return done_testing();
}
