# frozen_string_literal: true

require "tmpdir"

# A self-signed certificate for 127.0.0.1 and localhost, made once per run with openssl
# (never committed): `[cert_path, key_path]`.
module TestCertificate
  def self.files
    @files ||= begin
      dir = Dir.mktmpdir("lunar-tls")
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
end
