/*
** tls_api.h: the OpenSSL 3 functions that tide.tls calls, through
** pointers that tls_load.c fills from libssl.so.3, opened on the first
** use of tide.tls (as http_client_curl.c opens libcurl): a program that
** never uses TLS never loads OpenSSL, which would cost more than the rest
** of an empty run. Included after every OpenSSL header (tls.h does it):
** each name below then calls through its pointer, also where an OpenSSL
** macro expands to it.
*/
#ifndef TIDE_TLS_API_H
#define TIDE_TLS_API_H

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS_SONAME "libssl.so.3"   /* Debian's libssl3; libcrypto with it */

#define TLS_FUNCS(X) \
  X(ASN1_STRING_get0_data) X(ASN1_STRING_length) \
  X(ASN1_TIME_to_tm) X(BIO_clear_flags) X(BIO_ctrl) X(BIO_free) \
  X(BIO_get_data) X(BIO_get_new_index) X(BIO_meth_new) \
  X(BIO_meth_set_create) X(BIO_meth_set_ctrl) \
  X(BIO_meth_set_read) X(BIO_meth_set_write) X(BIO_new) \
  X(BIO_new_mem_buf) X(BIO_s_mem) X(BIO_set_data) \
  X(BIO_set_flags) X(BIO_set_init) X(CRYPTO_free) \
  X(CRYPTO_get_ex_new_index) X(ERR_clear_error) \
  X(ERR_peek_error) X(ERR_peek_last_error) \
  X(ERR_reason_error_string) X(EVP_PKEY_free) \
  X(GENERAL_NAMES_free) X(OPENSSL_init_ssl) X(OPENSSL_sk_num) \
  X(OPENSSL_sk_value) X(PEM_read_bio_PrivateKey) \
  X(PEM_read_bio_X509) X(SSL_CIPHER_get_name) \
  X(SSL_CTX_callback_ctrl) X(SSL_CTX_check_private_key) \
  X(SSL_CTX_ctrl) X(SSL_CTX_free) X(SSL_CTX_get_cert_store) \
  X(SSL_CTX_get_ex_data) X(SSL_CTX_load_verify_dir) \
  X(SSL_CTX_load_verify_file) X(SSL_CTX_new) \
  X(SSL_CTX_sess_set_new_cb) X(SSL_CTX_set_alpn_protos) \
  X(SSL_CTX_set_alpn_select_cb) X(SSL_CTX_set_cipher_list) \
  X(SSL_CTX_set_ciphersuites) X(SSL_CTX_set_default_passwd_cb) \
  X(SSL_CTX_set_default_passwd_cb_userdata) \
  X(SSL_CTX_set_default_verify_paths) X(SSL_CTX_set_ex_data) \
  X(SSL_CTX_set_num_tickets) X(SSL_CTX_set_options) \
  X(SSL_CTX_set_session_id_context) X(SSL_CTX_up_ref) \
  X(SSL_CTX_use_PrivateKey) X(SSL_CTX_use_PrivateKey_file) \
  X(SSL_CTX_use_certificate) \
  X(SSL_CTX_use_certificate_chain_file) X(SSL_SESSION_free) \
  X(SSL_SESSION_is_resumable) X(SSL_alert_desc_string_long) \
  X(SSL_ctrl) X(SSL_free) X(SSL_get0_alpn_selected) \
  X(SSL_get0_param) X(SSL_get0_peer_certificate) \
  X(SSL_get_SSL_CTX) X(SSL_get_current_cipher) X(SSL_get_error) \
  X(SSL_get_ex_data) X(SSL_get_peer_cert_chain) \
  X(SSL_get_peer_finished) X(SSL_get_servername) \
  X(SSL_get_verify_mode) X(SSL_get_verify_result) \
  X(SSL_get_version) X(SSL_is_init_finished) X(SSL_is_server) \
  X(SSL_new) X(SSL_read) X(SSL_select_next_proto) \
  X(SSL_session_reused) X(SSL_set1_host) X(SSL_set_SSL_CTX) \
  X(SSL_set_accept_state) X(SSL_set_bio) \
  X(SSL_set_connect_state) X(SSL_set_ex_data) \
  X(SSL_set_hostflags) X(SSL_set_session) X(SSL_set_verify) \
  X(SSL_shutdown) X(SSL_write_ex) X(TLS_method) \
  X(X509_NAME_get_text_by_NID) X(X509_NAME_print_ex) \
  X(X509_STORE_add_cert) X(X509_STORE_get0_objects) \
  X(X509_VERIFY_PARAM_get0_host) \
  X(X509_VERIFY_PARAM_get1_ip_asc) \
  X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_free) \
  X(X509_get0_notAfter) X(X509_get0_notBefore) \
  X(X509_get_default_cert_dir) X(X509_get_default_cert_dir_env) \
  X(X509_get_default_cert_file) \
  X(X509_get_default_cert_file_env) X(X509_get_ext_d2i) \
  X(X509_get_issuer_name) X(X509_get_subject_name) \
  X(X509_verify_cert_error_string)

#define TLS_DECLARE(f) extern __typeof__(&f) tls__p_##f;
TLS_FUNCS(TLS_DECLARE)
#undef TLS_DECLARE

/* Load OpenSSL (once): NULL, or why it cannot be loaded. */
const char *tls__load (void);

/* From here on each name calls through its pointer. */
#define ASN1_STRING_get0_data (*tls__p_ASN1_STRING_get0_data)
#define ASN1_STRING_length (*tls__p_ASN1_STRING_length)
#define ASN1_TIME_to_tm (*tls__p_ASN1_TIME_to_tm)
#define BIO_clear_flags (*tls__p_BIO_clear_flags)
#define BIO_ctrl (*tls__p_BIO_ctrl)
#define BIO_free (*tls__p_BIO_free)
#define BIO_get_data (*tls__p_BIO_get_data)
#define BIO_get_new_index (*tls__p_BIO_get_new_index)
#define BIO_meth_new (*tls__p_BIO_meth_new)
#define BIO_meth_set_create (*tls__p_BIO_meth_set_create)
#define BIO_meth_set_ctrl (*tls__p_BIO_meth_set_ctrl)
#define BIO_meth_set_read (*tls__p_BIO_meth_set_read)
#define BIO_meth_set_write (*tls__p_BIO_meth_set_write)
#define BIO_new (*tls__p_BIO_new)
#define BIO_new_mem_buf (*tls__p_BIO_new_mem_buf)
#define BIO_s_mem (*tls__p_BIO_s_mem)
#define BIO_set_data (*tls__p_BIO_set_data)
#define BIO_set_flags (*tls__p_BIO_set_flags)
#define BIO_set_init (*tls__p_BIO_set_init)
#define CRYPTO_free (*tls__p_CRYPTO_free)
#define CRYPTO_get_ex_new_index (*tls__p_CRYPTO_get_ex_new_index)
#define ERR_clear_error (*tls__p_ERR_clear_error)
#define ERR_peek_error (*tls__p_ERR_peek_error)
#define ERR_peek_last_error (*tls__p_ERR_peek_last_error)
#define ERR_reason_error_string (*tls__p_ERR_reason_error_string)
#define EVP_PKEY_free (*tls__p_EVP_PKEY_free)
#define GENERAL_NAMES_free (*tls__p_GENERAL_NAMES_free)
#define OPENSSL_init_ssl (*tls__p_OPENSSL_init_ssl)
#define OPENSSL_sk_num (*tls__p_OPENSSL_sk_num)
#define OPENSSL_sk_value (*tls__p_OPENSSL_sk_value)
#define PEM_read_bio_PrivateKey (*tls__p_PEM_read_bio_PrivateKey)
#define PEM_read_bio_X509 (*tls__p_PEM_read_bio_X509)
#define SSL_CIPHER_get_name (*tls__p_SSL_CIPHER_get_name)
#define SSL_CTX_callback_ctrl (*tls__p_SSL_CTX_callback_ctrl)
#define SSL_CTX_check_private_key (*tls__p_SSL_CTX_check_private_key)
#define SSL_CTX_ctrl (*tls__p_SSL_CTX_ctrl)
#define SSL_CTX_free (*tls__p_SSL_CTX_free)
#define SSL_CTX_get_cert_store (*tls__p_SSL_CTX_get_cert_store)
#define SSL_CTX_get_ex_data (*tls__p_SSL_CTX_get_ex_data)
#define SSL_CTX_load_verify_dir (*tls__p_SSL_CTX_load_verify_dir)
#define SSL_CTX_load_verify_file (*tls__p_SSL_CTX_load_verify_file)
#define SSL_CTX_new (*tls__p_SSL_CTX_new)
#define SSL_CTX_sess_set_new_cb (*tls__p_SSL_CTX_sess_set_new_cb)
#define SSL_CTX_set_alpn_protos (*tls__p_SSL_CTX_set_alpn_protos)
#define SSL_CTX_set_alpn_select_cb (*tls__p_SSL_CTX_set_alpn_select_cb)
#define SSL_CTX_set_cipher_list (*tls__p_SSL_CTX_set_cipher_list)
#define SSL_CTX_set_ciphersuites (*tls__p_SSL_CTX_set_ciphersuites)
#define SSL_CTX_set_default_passwd_cb (*tls__p_SSL_CTX_set_default_passwd_cb)
#define SSL_CTX_set_default_passwd_cb_userdata (*tls__p_SSL_CTX_set_default_passwd_cb_userdata)
#define SSL_CTX_set_default_verify_paths (*tls__p_SSL_CTX_set_default_verify_paths)
#define SSL_CTX_set_ex_data (*tls__p_SSL_CTX_set_ex_data)
#define SSL_CTX_set_num_tickets (*tls__p_SSL_CTX_set_num_tickets)
#define SSL_CTX_set_options (*tls__p_SSL_CTX_set_options)
#define SSL_CTX_set_session_id_context (*tls__p_SSL_CTX_set_session_id_context)
#define SSL_CTX_up_ref (*tls__p_SSL_CTX_up_ref)
#define SSL_CTX_use_PrivateKey (*tls__p_SSL_CTX_use_PrivateKey)
#define SSL_CTX_use_PrivateKey_file (*tls__p_SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_use_certificate (*tls__p_SSL_CTX_use_certificate)
#define SSL_CTX_use_certificate_chain_file (*tls__p_SSL_CTX_use_certificate_chain_file)
#define SSL_SESSION_free (*tls__p_SSL_SESSION_free)
#define SSL_SESSION_is_resumable (*tls__p_SSL_SESSION_is_resumable)
#define SSL_alert_desc_string_long (*tls__p_SSL_alert_desc_string_long)
#define SSL_ctrl (*tls__p_SSL_ctrl)
#define SSL_free (*tls__p_SSL_free)
#define SSL_get0_alpn_selected (*tls__p_SSL_get0_alpn_selected)
#define SSL_get0_param (*tls__p_SSL_get0_param)
#define SSL_get0_peer_certificate (*tls__p_SSL_get0_peer_certificate)
#define SSL_get_SSL_CTX (*tls__p_SSL_get_SSL_CTX)
#define SSL_get_current_cipher (*tls__p_SSL_get_current_cipher)
#define SSL_get_error (*tls__p_SSL_get_error)
#define SSL_get_ex_data (*tls__p_SSL_get_ex_data)
#define SSL_get_peer_cert_chain (*tls__p_SSL_get_peer_cert_chain)
#define SSL_get_peer_finished (*tls__p_SSL_get_peer_finished)
#define SSL_get_servername (*tls__p_SSL_get_servername)
#define SSL_get_verify_mode (*tls__p_SSL_get_verify_mode)
#define SSL_get_verify_result (*tls__p_SSL_get_verify_result)
#define SSL_get_version (*tls__p_SSL_get_version)
#define SSL_is_init_finished (*tls__p_SSL_is_init_finished)
#define SSL_is_server (*tls__p_SSL_is_server)
#define SSL_new (*tls__p_SSL_new)
#define SSL_read (*tls__p_SSL_read)
#define SSL_select_next_proto (*tls__p_SSL_select_next_proto)
#define SSL_session_reused (*tls__p_SSL_session_reused)
#define SSL_set1_host (*tls__p_SSL_set1_host)
#define SSL_set_SSL_CTX (*tls__p_SSL_set_SSL_CTX)
#define SSL_set_accept_state (*tls__p_SSL_set_accept_state)
#define SSL_set_bio (*tls__p_SSL_set_bio)
#define SSL_set_connect_state (*tls__p_SSL_set_connect_state)
#define SSL_set_ex_data (*tls__p_SSL_set_ex_data)
#define SSL_set_hostflags (*tls__p_SSL_set_hostflags)
#define SSL_set_session (*tls__p_SSL_set_session)
#define SSL_set_verify (*tls__p_SSL_set_verify)
#define SSL_shutdown (*tls__p_SSL_shutdown)
#define SSL_write_ex (*tls__p_SSL_write_ex)
#define TLS_method (*tls__p_TLS_method)
#define X509_NAME_get_text_by_NID (*tls__p_X509_NAME_get_text_by_NID)
#define X509_NAME_print_ex (*tls__p_X509_NAME_print_ex)
#define X509_STORE_add_cert (*tls__p_X509_STORE_add_cert)
#define X509_STORE_get0_objects (*tls__p_X509_STORE_get0_objects)
#define X509_VERIFY_PARAM_get0_host (*tls__p_X509_VERIFY_PARAM_get0_host)
#define X509_VERIFY_PARAM_get1_ip_asc (*tls__p_X509_VERIFY_PARAM_get1_ip_asc)
#define X509_VERIFY_PARAM_set1_ip_asc (*tls__p_X509_VERIFY_PARAM_set1_ip_asc)
#define X509_free (*tls__p_X509_free)
#define X509_get0_notAfter (*tls__p_X509_get0_notAfter)
#define X509_get0_notBefore (*tls__p_X509_get0_notBefore)
#define X509_get_default_cert_dir (*tls__p_X509_get_default_cert_dir)
#define X509_get_default_cert_dir_env (*tls__p_X509_get_default_cert_dir_env)
#define X509_get_default_cert_file (*tls__p_X509_get_default_cert_file)
#define X509_get_default_cert_file_env (*tls__p_X509_get_default_cert_file_env)
#define X509_get_ext_d2i (*tls__p_X509_get_ext_d2i)
#define X509_get_issuer_name (*tls__p_X509_get_issuer_name)
#define X509_get_subject_name (*tls__p_X509_get_subject_name)
#define X509_verify_cert_error_string (*tls__p_X509_verify_cert_error_string)

#endif
