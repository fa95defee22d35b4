/* Test-only PAM module (tests/rules.rs): puts TWOFOLD_TEST_SSH_AUTH_INFO_0 from the process
 * environment into the PAM environment as SSH_AUTH_INFO_0, as sshd does before it runs the
 * auth stack. The value may hold newlines (module arguments cannot). Returns PAM_IGNORE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <security/pam_modules.h>

int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags; (void)argc; (void)argv;
    const char *value = getenv("TWOFOLD_TEST_SSH_AUTH_INFO_0");
    if (value == NULL) return PAM_IGNORE;
    size_t len = strlen("SSH_AUTH_INFO_0=") + strlen(value) + 1;
    char *entry = malloc(len);
    if (entry == NULL) return PAM_BUF_ERR;
    snprintf(entry, len, "SSH_AUTH_INFO_0=%s", value);
    int rc = pam_putenv(pamh, entry);
    free(entry);
    return rc == PAM_SUCCESS ? PAM_IGNORE : rc;
}

int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)pamh; (void)flags; (void)argc; (void)argv;
    return PAM_IGNORE;
}
