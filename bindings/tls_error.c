/*
** tls_error.c: what went wrong in TLS, said so that a person can act on
** it, with a stable code: ETLSVERIFY (the peer's certificate is not
** trusted), ETLSHOSTNAME (it is for another name), ETLSALERT (the peer
** refused: it sent an alert), ETLSHANDSHAKE (no handshake: nothing in
** common, not TLS, closed), ETLSPROTOCOL (a broken record after it),
** ETLSTRUNCATED (closed without close_notify), ETLSCONFIG (a certificate,
** key or trust file that will not load), ETLS (anything else).
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

/* Alerts a peer sends, with what they most often mean. */
static const struct { int alert; const char *say; } alerts[] = {
  { SSL_AD_HANDSHAKE_FAILURE, "handshake failure (a client certificate "
                              "required? or no protocol version, cipher or "
                              "key type in common)" },
  { SSL_AD_PROTOCOL_VERSION, "protocol version (no TLS version in common)" },
  { SSL_AD_UNKNOWN_CA, "unknown CA (the peer does not trust our "
                       "certificate's issuer)" },
  { SSL_AD_BAD_CERTIFICATE, "bad certificate (the peer rejected ours)" },
  { SSL_AD_CERTIFICATE_EXPIRED, "certificate expired (the peer rejected "
                                "ours)" },
  { SSL_AD_CERTIFICATE_REQUIRED, "certificate required (give a client "
                                 "certificate: cert and key)" },
  { SSL_AD_NO_APPLICATION_PROTOCOL, "no application protocol (no ALPN "
                                    "protocol in common)" },
  { SSL_AD_UNRECOGNIZED_NAME, "unrecognized name (the server has no "
                              "certificate for that name)" },
  { 0, NULL }
};

/* Reasons that mean the bytes were not TLS (or were broken). */
static const int garbage[] = {
  SSL_R_WRONG_VERSION_NUMBER, SSL_R_UNKNOWN_PROTOCOL, SSL_R_HTTP_REQUEST,
  SSL_R_HTTPS_PROXY_REQUEST, SSL_R_PACKET_LENGTH_TOO_LONG,
  SSL_R_RECORD_LENGTH_MISMATCH, SSL_R_ENCRYPTED_LENGTH_TOO_LONG,
  SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC, SSL_R_BAD_RECORD_TYPE,
  SSL_R_UNEXPECTED_MESSAGE, SSL_R_UNEXPECTED_RECORD, SSL_R_BAD_LENGTH,
  SSL_R_LENGTH_MISMATCH, SSL_R_BAD_PACKET_LENGTH, SSL_R_DATA_LENGTH_TOO_LONG,
  SSL_R_RECORD_TOO_SMALL, SSL_R_BAD_PACKET, 0
};

static int isgarbage (int reason) {
  int i;
  for (i = 0; garbage[i] != 0; i++)
    if (garbage[i] == reason) return 1;
  return 0;
}

/* The names a certificate is for (its DNS and IP alternative names, else
** its common name), appended to msg. */
static void certnames (X509 *x, char *msg, size_t size) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  size_t n = strlen(msg);
  int i, first = 1;
  for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    char ip[64] = "";
    const char *s = NULL;
    if (g->type == GEN_DNS)
      s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
    else if (g->type == GEN_IPADD) {
      const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
      if (ASN1_STRING_length(g->d.iPAddress) == 4)
        snprintf(ip, sizeof ip, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
      else snprintf(ip, sizeof ip, "an IPv6 address");
      s = ip;
    }
    if (s == NULL || n >= size) continue;
    n += (size_t)snprintf(msg + n, size - n, "%s%s",
                          first ? "; the certificate is for " : ", ", s);
    first = 0;
  }
  GENERAL_NAMES_free(gens);
  if (first && n < size) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
                                  cn, sizeof cn) > 0)
      snprintf(msg + n, size - n, "; the certificate is for %s", cn);
  }
}

static const char *verifywhy (SSL *ssl, char *msg, size_t size) {
  long vr = SSL_get_verify_result(ssl);
  if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
    const char *host = X509_VERIFY_PARAM_get0_host(p, 0);
    char *ip = host ? NULL : X509_VERIFY_PARAM_get1_ip_asc(p);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    snprintf(msg, size, "host name mismatch: expected %s",
             host ? host : ip ? ip : "?");
    OPENSSL_free(ip);
    if (chain != NULL && sk_X509_num(chain) > 0)
      certnames(sk_X509_value(chain, 0), msg, size);
    return "ETLSHOSTNAME";
  }
  snprintf(msg, size, "certificate verify failed: %s",
           X509_verify_cert_error_string(vr));
  return "ETLSVERIFY";
}

static const char *alertwhy (int alert, char *msg, size_t size) {
  int i;
  for (i = 0; alerts[i].say != NULL; i++)
    if (alerts[i].alert == alert) {
      snprintf(msg, size, "the peer sent an alert: %s", alerts[i].say);
      return "ETLSALERT";
    }
  snprintf(msg, size, "the peer sent an alert: %s",
           SSL_alert_desc_string_long(alert));
  return "ETLSALERT";
}

static const char *closedwhy (int done, char *msg, size_t size) {
  if (!done) {
    snprintf(msg, size, "handshake failed: the connection closed");
    return "ETLSHANDSHAKE";
  }
  snprintf(msg, size, "the connection closed without close_notify (the "
           "data may be truncated)");
  return "ETLSTRUNCATED";
}

const char *tls__why (SSL *ssl, int ret, int init, char *msg, size_t size) {
  int e = SSL_get_error(ssl, ret);
  unsigned long err = ERR_peek_error();
  int reason = ERR_GET_REASON(err);
  const char *code;
  ERR_clear_error();
  if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN ||
      reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
    return closedwhy(init, msg, size);
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
    return verifywhy(ssl, msg, size);
  if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    snprintf(msg, size, "certificate verify failed: the peer sent no "
             "certificate (one is required)");
    return "ETLSVERIFY";
  }
  if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
    return alertwhy(reason - SSL_AD_REASON_OFFSET, msg, size);
  if (err == 0) {
    snprintf(msg, size, "TLS error %d", e);
    return "ETLS";
  }
  if (isgarbage(reason)) {
    if (init) {
      snprintf(msg, size, "broken TLS record: %s",
               ERR_reason_error_string(err));
      return "ETLSPROTOCOL";
    }
    snprintf(msg, size, "handshake failed: %s (the peer does not speak "
             "TLS?)", ERR_reason_error_string(err));
    return "ETLSHANDSHAKE";
  }
  code = init ? "ETLS" : "ETLSHANDSHAKE";
  if (reason == SSL_R_NO_SHARED_CIPHER)
    snprintf(msg, size, "no shared cipher");
  else if (ERR_reason_error_string(err) != NULL)
    snprintf(msg, size, "%s%s", init ? "" : "handshake failed: ",
             ERR_reason_error_string(err));
  else snprintf(msg, size, "TLS error (reason %d)", reason);
  return code;
}

/* Why a file named path cannot be read, or NULL if it can. */
static const char *unreadable (const char *path) {
  if (path == NULL || access(path, R_OK) == 0) return NULL;
  switch (errno) {
    case ENOENT: return "no such file";
    case EACCES: return "permission denied";
    default: return strerror(errno);
  }
}

static int pemlib (unsigned long e) {
  return ERR_GET_LIB(e) == ERR_LIB_PEM || ERR_GET_LIB(e) == ERR_LIB_EVP ||
         ERR_GET_LIB(e) == ERR_LIB_ASN1 || ERR_GET_LIB(e) == ERR_LIB_PKCS12 ||
#ifdef ERR_LIB_PROV
         ERR_GET_LIB(e) == ERR_LIB_PROV ||      /* a key that will not decrypt */
#endif
         ERR_GET_REASON(e) == ERR_R_PEM_LIB;
}

/* A configuration that would not load: "what: why", said for a person
** where OpenSSL's reason would not be (a missing file, a key that will not
** decrypt, a file that holds no certificate). */
const char *tls__configwhy (const char *what, const char *field,
                            const char *path, int pass, char *msg,
                            size_t size) {
  unsigned long first = ERR_peek_error(), last = ERR_peek_last_error();
  const char *r = last ? ERR_reason_error_string(last) : NULL;
  const char *why = unreadable(path);
  if (why == NULL && strcmp(field, "key") == 0 && (pemlib(first) || pemlib(last)))
    why = pass ? "bad password, or not a PEM private key"
               : "not a PEM private key, or an encrypted one (give password)";
  else if (why == NULL && (strcmp(field, "cert") == 0 ||
                           strcmp(field, "cafile") == 0) &&
           (pemlib(first) || pemlib(last)))
    why = "no PEM certificate in it";
  ERR_clear_error();
  snprintf(msg, size, "%s: %s", what, why ? why : r ? r : "not loaded");
  return "ETLSCONFIG";
}
