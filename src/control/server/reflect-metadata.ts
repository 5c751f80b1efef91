// @peculiar/x509 registers its algorithms through tsyringe, which refuses to load unless the
// Reflect metadata API is present: the reflect-metadata polyfill, imported before @peculiar/x509.
import 'reflect-metadata';
