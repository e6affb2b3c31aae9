# frozen_string_literal: true

require "unit_helper"
require "lunar/process/configuration"
require "lunar/process/dsl"

# Settings in Puma's layers: command line > config file > the Rack handler's defaults >
# environment > the table's defaults.
RSpec.describe Lunar::Configuration do
  def file(text) = load_config(text).first

  it "layers the command line over the file over the environment over the defaults" do
    env = { "PORT" => "4000", "PUMA_MAX_THREADS" => "11", "RACK_ENV" => "staging" }
    config = described_class.new({ timeout: "10" }, file: file("threads 2, 8\ntimeout 20\nqueue 7"), env: env)
    expect([config[:timeout], config.threads, config[:queue], config[:port], config[:environment]]).to eq([10.0, 8, 7, 4000, "staging"])
    expect(described_class.new({}, env: env).threads).to eq(11)
    expect(described_class.new({}, env: {})[:port]).to eq(9292)
  end

  it "reads Puma's environment variables in Puma's order" do
    expect(described_class.new({}, env: { "MAX_THREADS" => "4", "RAILS_MAX_THREADS" => "9" }).threads).to eq(4)
    expect(described_class.new({}, env: { "RAILS_MAX_THREADS" => "9" }).threads).to eq(9)
    expect(described_class.new({}, env: { "APP_ENV" => "a", "RACK_ENV" => "b", "RAILS_ENV" => "c" })[:environment]).to eq("a")
    expect(described_class.new({}, env: { "WEB_CONCURRENCY" => "3" })[:workers]).to eq(3)
    expect(described_class.new({}, env: { "WEB_CONCURRENCY" => "auto" })[:workers]).to eq(Etc.nprocessors)
  end

  it "names the variable whose value is bad" do
    expect { described_class.new({}, env: { "PORT" => "http" }).check! }.to raise_error(Lunar::Options::Invalid, /PORT=http: "http" is not a port number/)
  end

  it "replaces the file's binds with the command line's, as Puma does" do
    with_file = file(%(bind "unix:///tmp/a.sock"\nport 4000))
    expect(described_class.new({}, file: with_file, env: {}).binds).to eq(["unix:///tmp/a.sock", "tcp://0.0.0.0:4000"])
    expect(described_class.new({ port: 5000 }, file: with_file, env: {}).binds).to eq(["tcp://0.0.0.0:5000"])
    expect(described_class.new({ bind: ["tcp://127.0.0.1:1"] }, file: with_file, env: {}).binds).to eq(["tcp://127.0.0.1:1"])
    expect(described_class.new({}, defaults: { port: 3000, address: "localhost" }, env: {}).binds).to eq(["tcp://localhost:3000"])
  end

  it "makes the tcp binds TLS with --ssl, client certificates included" do
    config = described_class.new({ ssl: true, ssl_cert_file: "c.pem", ssl_key_file: "k.pem", ssl_ca_file: "ca.pem", ssl_verify: "force_peer", port: 443 },
                                 env: {})
    expect(config.binds).to eq(["ssl://0.0.0.0:443?cert=c.pem&key=k.pem&ca=ca.pem&verify_mode=force_peer"])
    expect { described_class.new({ ssl: true }, env: {}).binds }.to raise_error(Lunar::Options::Invalid, /--ssl needs/)
  end

  it "keeps a Thin user's --timeout for idle keep-alive connections, else Puma 7's 65 s" do
    expect(described_class.new({}, env: {})[:persistent_timeout]).to eq(65)
    expect(described_class.new({ timeout: 5 }, env: {})[:persistent_timeout]).to eq(5.0)
    expect(described_class.new({ timeout: 5, persistent_timeout: 70 }, env: {})[:persistent_timeout]).to eq(70.0)
  end

  it "refuses a key that is not an option" do
    expect { described_class.new({ queue_capacity: 4 }) }.to raise_error(Lunar::Options::Invalid, /unknown Lunar option `queue_capacity'/)
  end

  it "hands the native core every option it reads, checked" do
    native = described_class.new({ timeout: 0, stream_buffer: "2m", mode: "evented" }, env: {}).native_options
    expect(native).to include(timeout: 0.0, stream_buffer: 2 << 20, queue: 1024, persistent_timeout: 0.0, binds: ["tcp://0.0.0.0:9292"])
    expect(native.keys).to include(*Lunar::Options::ALL.select(&:native).map(&:name))
  end
end
