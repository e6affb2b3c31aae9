# frozen_string_literal: true

require "tmpdir"

# A self-signed certificate for 127.0.0.1 and localhost, made once per run with openssl
# (never committed): `[cert_path, key_path]`.
module TestCertificate
  def self.files
    @files ||= begin
      dir = ScratchDirs.for_the_run("lunar-tls")
      cert = File.join(dir, "cert.pem")
      key = File.join(dir, "key.pem")
      ok = system("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert,
                  out: File::NULL, err: File::NULL)
      raise "openssl could not make a test certificate" unless ok

      [cert, key]
    end
  end

  def self.bind
    cert, key = files
    "ssl://127.0.0.1:0?cert=#{cert}&key=#{key}"
  end

  # A CA and a client certificate it signed, for client-certificate checks:
  # `{ ca:, cert:, key: }` (paths).
  def self.client
    @client ||= begin
      dir = ScratchDirs.for_the_run("lunar-client-tls")
      paths = { ca: File.join(dir, "ca.pem"), ca_key: File.join(dir, "ca-key.pem"), cert: File.join(dir, "client.pem"),
                key: File.join(dir, "client-key.pem"), csr: File.join(dir, "client.csr") }
      openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Lunar test CA",
              "-keyout", paths[:ca_key], "-out", paths[:ca])
      openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client", "-keyout", paths[:key], "-out", paths[:csr])
      extensions = File.join(dir, "client.ext") # an X.509 v3 client certificate, as webpki wants
      File.write(extensions, "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
      openssl("x509", "-req", "-in", paths[:csr], "-CA", paths[:ca], "-CAkey", paths[:ca_key], "-CAcreateserial",
              "-days", "1", "-extfile", extensions, "-out", paths[:cert])
      paths
    end
  end

  def self.openssl(*args)
    system("openssl", *args, out: File::NULL, err: File::NULL) or raise "openssl #{args.first} failed"
  end
end
