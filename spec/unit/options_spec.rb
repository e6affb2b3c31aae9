# frozen_string_literal: true

require "unit_helper"
require "lunar/process/options"

# The option table: the one place an option is defined, and what it accepts.
RSpec.describe Lunar::Options do
  it "is the README's option table, word for word" do
    readme = File.read(File.expand_path("../../README.md", __dir__))
    table = readme[%r{<!-- options: made by `rake options` from lib/lunar/process/options.rb -->\n(.*?)<!-- /options -->}m, 1]
    expect(table).to eq(described_class.markdown), "run `rake options` and commit README.md"
  end

  it "names every option once, each with a doc line and a section" do
    names = described_class::ALL.map(&:name)
    expect(names.uniq).to eq(names)
    flags = described_class::ALL.flat_map(&:flags).map { |f| f.split.first }
    expect(flags.uniq).to eq(flags)
    expect(described_class::ALL).to all(have_attributes(doc: a_string_matching(/\S/), section: be_a(Symbol)))
  end

  {
    port: { "8080" => 8080, 0 => 0 },
    threads: { "4" => [4, 4], "2:8" => [2, 8], [0, 16] => [0, 16] },
    timeout: { "0" => 0.0, "1.5" => 1.5, 30 => 30.0 },
    stream_buffer: { "64k" => 65_536, "1m" => 1_048_576, 512 => 512 },
    ssl: { true => true, "false" => false },
    mode: { "evented" => :evented },
    log_format: { "json" => :json },
  }.each do |name, accepted|
    it "accepts #{name} as #{accepted.keys.map(&:inspect).join(', ')}" do
      accepted.each { |given, value| expect(described_class[name].check(given)).to eq(value) }
    end
  end

  {
    port: ["70000", "-1", "http", 1.5],
    threads: ["0", "8:2", "a:b", "-1:4"],
    timeout: ["1e400", "inf", "nan", "-3", "soon"],
    header_timeout: ["0", "-1"],
    workers: ["-1", "two"],
    stream_buffer: ["0", "1t", "-5k"],
    mode: ["fast"],
  }.each do |name, refused|
    it "refuses #{name} given as #{refused.map(&:inspect).join(', ')}, naming the option and what it accepts" do
      option = described_class[name]
      refused.each do |given|
        expect { option.check(given, "--#{name}") }.to raise_error(described_class::Invalid, /\A--#{name}: .* is not #{Regexp.escape(option.type.accepts)}\z/)
      end
    end
  end

  it "refuses an option it does not know" do
    expect { described_class[:turbo] }.to raise_error(described_class::Invalid, /unknown Lunar option `turbo'/)
  end
end
