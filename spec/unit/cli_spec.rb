# frozen_string_literal: true

require "unit_helper"
require "lunar/process/cli"

# The command line: flags from the option table, parsed into settings (the black-box
# spec/cli_spec.rb runs the command itself).
RSpec.describe Lunar::CLI do
  def settings(*argv) = described_class.new(argv).settings

  it "parses flags into checked settings" do
    expect(settings("-p", "4000", "-t", "2:8", "--timeout", "0", "--stream-buffer", "64k", "--evented", "--em", "app.ru"))
      .to eq(port: 4000, threads: [2, 8], timeout: 0.0, stream_buffer: 65_536, mode: :evented, eventmachine: true, rackup: "app.ru")
    expect(settings("--pidfile", "a.pid")).to eq(pidfile: "a.pid")
    expect(settings("--pid", "b.pid")).to eq(pidfile: "b.pid")
    expect(settings("-b", "tcp://127.0.0.1:1", "-b", "unix:///tmp/x.sock")).to eq(bind: ["tcp://127.0.0.1:1", "unix:///tmp/x.sock"])
    expect(settings("--access-log")).to eq(access_log: "-")
  end

  it "refuses a bad value with the flag it came with" do
    expect { settings("--timeout", "1e400") }.to raise_error(Lunar::Options::Invalid, /\A--timeout: "1e400" is not a number of seconds/)
    expect { settings("-t", "0") }.to raise_error(Lunar::Options::Invalid, /\A-t: "0" is not a thread count/)
    expect { settings("-p", "65536") }.to raise_error(Lunar::Options::Invalid, /\A-p: "65536"/)
  end

  it "knows config files by their extension: Thin's YAML, else Puma's Ruby" do
    dir = scratch_dir("lunar-cli")
    File.write(File.join(dir, "thin.yml"), "port: 4001\n")
    File.write(File.join(dir, "puma.rb"), "port 4002\n")
    expect(described_class.config_file(File.join(dir, "thin.yml")).settings).to eq(port: 4001)
    expect(described_class.config_file(File.join(dir, "puma.rb")).settings).to eq(port: 4002)
  end
end
