/* Fuzz target: label and field selector parsers on arbitrary text. The first byte picks the
 * parser ('L' or anything even: labels; otherwise fields, and which kind's field set). Checks
 * that what parses formats to text that parses again to the same normal form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/selector.h"
#include "base/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *sample_labels(void)
{
    return json_pack("{s:s, s:s, s:s}", "app", "web", "env", "prod", "topology.stratus.io/zone",
                     "a");
}

static void fuzz_labels(const char *text)
{
    api_label_selector *s = NULL;
    api_error e;
    if (api_label_selector_parse(text, &s, &e) < 0)
        return;
    json_t *labels = sample_labels();
    (void)api_label_selector_matches(s, labels);
    (void)api_label_selector_matches(s, NULL);
    json_decref(labels);
    char *f = api_label_selector_format(s);
    api_label_selector *again = NULL;
    if (api_label_selector_parse(f, &again, &e) < 0)
        abort();
    char *f2 = api_label_selector_format(again);
    if (strcmp(f, f2) != 0)
        abort();
    free(f);
    free(f2);
    api_label_selector_free(again);
    api_label_selector_free(s);
}

static void fuzz_fields(const char *text, const api_kind_info *k)
{
    api_field_selector *s = NULL;
    api_error e;
    if (api_field_selector_parse(text, k, &s, &e) < 0)
        return;
    json_t *obj = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:b}, s:{s:s}}", "kind", "Instance",
                            "metadata", "name", "web-1", "namespace", "default", "spec", "nodeName",
                            "node-1", "unschedulable", 1, "status", "phase", "Running");
    (void)api_field_selector_matches(s, obj);
    json_decref(obj);
    char *f = api_field_selector_format(s);
    api_field_selector *again = NULL;
    if (api_field_selector_parse(f, k, &again, &e) < 0)
        abort();
    char *f2 = api_field_selector_format(again);
    if (strcmp(f, f2) != 0)
        abort();
    free(f);
    free(f2);
    api_field_selector_free(again);
    api_field_selector_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = xstrndup((const char *)data + 1, size - 1);
    if (data[0] == 'L' || data[0] % 2 == 0)
        fuzz_labels(text);
    else
        fuzz_fields(text, api_kind_get((api_kind)(data[0] / 2 % (_API_KIND_MAX + 1))));
    free(text);
    return 0;
}
