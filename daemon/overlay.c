/* overlay: the registry of overlay cores (see overlay.h). The one place
 * that names a particular core. */
#include "overlay.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "overlay_hyparview.h"

extern const struct overlay_ops overlay_full_mesh_ops;
extern const struct overlay_ops overlay_hyparview_ops;

static const struct overlay_ops *const cores[] = {
    &overlay_full_mesh_ops,
    &overlay_hyparview_ops,
};

const struct overlay_ops *overlay_find(const char *type)
{
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (type && strcmp(cores[i]->name, type) == 0)
            return cores[i];
    return NULL;
}

const char *overlay_names(void)
{
    return "full_mesh, hyparview";
}

struct overlay *overlay_create_configured(const struct overlay_ops *ops, const struct config *c,
                                          struct overlay_config *oc, const struct overlay_env *env)
{
    /* Cores copy their parameters at create, so these may live here. */
    struct hyparview_params hv;
    hyparview_params_default(&hv);
    hv.active_max_size = c->hv_active_max_size;
    hv.active_min_size = c->hv_active_min_size;
    hv.passive_max_size = c->hv_passive_max_size;
    hv.active_rwl = c->hv_active_rwl;
    hv.passive_rwl = c->hv_passive_rwl;
    hv.shuffle_interval_ms = c->hv_shuffle_interval_ms;
    hv.shuffle_k_active = c->hv_shuffle_k_active;
    hv.shuffle_k_passive = c->hv_shuffle_k_passive;
    hv.random_promotion_interval_ms = c->hv_random_promotion_interval_ms;
    hv.announce_interval_ms = c->hv_announce_interval_ms;
    oc->hyparview = &hv;
    struct overlay *o = ops->create(oc, env);
    oc->hyparview = NULL;
    return o;
}

void overlay_logf(const struct overlay_env *env, enum overlay_log_level level, const char *fmt, ...)
{
    if (!env->log)
        return;
    char line[OVERLAY_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    env->log(env->ctx, level, line);
}
