/* Fuzz target: manifest loading, validation and defaulting on arbitrary bytes. Beyond "never
 * crash", it checks the invariants the apiserver relies on: what loads is valid, preparing it
 * again changes nothing, and it has an etcd key. Seeds: manifests/ and the broken corpus. */
#include <stdint.h>
#include <stdlib.h>

#include "api/object.h"
#include "api/selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_raw(const char *text, size_t size)
{
    api_error e;
    json_t *doc = NULL;
    if (api_json_load(text, size, &doc, &e) < 0)
        return;
    /* validate() also walks system metadata and status, which prepare strips. */
    if (api_object_validate(doc, &e) < 0)
        free(api_error_to_string(&e));
    const api_kind_info *k = api_object_kind(doc);
    json_t *status = json_object_get(doc, "status");
    if (k && status)
        (void)api_object_validate_status(k, status, &e);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    check_raw(text, size);

    api_error e;
    json_t *items = NULL;
    if (api_manifest_load(text, size, &items, &e) < 0) {
        free(api_error_to_string(&e));
        return 0;
    }
    api_label_selector *ls = NULL;
    api_field_selector *fs = NULL;
    if (api_label_selector_parse("app=web,env notin (dev),!canary", &ls, NULL) < 0 ||
        api_field_selector_parse("metadata.namespace=default,spec.nodeName!=", NULL, &fs, NULL) < 0)
        abort();
    size_t i;
    json_t *o;
    json_array_foreach (items, i, o) {
        if (api_object_validate(o, &e) < 0)
            abort();
        json_t *again = json_deep_copy(o);
        if (api_object_prepare(again, &e) < 0 || !api_spec_equal(o, again) ||
            !api_object_apply_equal(o, again))
            abort();
        json_decref(again);
        char *key = NULL;
        if (api_object_key(o, &key) < 0)
            abort();
        free(key);
        free(api_json_canonical(o));
        (void)api_label_selector_matches(ls, api_object_labels(o));
        (void)api_field_selector_matches(fs, o);
    }
    api_label_selector_free(ls);
    api_field_selector_free(fs);
    json_decref(items);
    return 0;
}
